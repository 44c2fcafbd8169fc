"""MovieLens as raw logs: ratings become watches, tags become searches.

Two layouts are read: ml-100k (`u.data`, `u.item`, `u.user`: tab/pipe-separated, Latin-1, no
header) and the CSV layout of ml-latest-small and ml-25m (`ratings.csv`, `movies.csv`, optional
`tags.csv`). MovieLens has no watch time, impressions, devices, countries, creators or
subscriptions; what is derived instead is listed in `NOTES` (and in docs/importers.md), and every
import's manifest carries the notes that applied to it.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from vidrec.importers.common import (
    DatasetImportError,
    ImportedLogs,
    empty_frame,
    numeric_column,
    read_csv_checked,
    require_file,
    sample_user_ids,
    title_tokens,
    title_year,
    unix_seconds_to_time,
    words,
)

SOURCE = "movielens"
MAX_RATING = 5.0
# A nominal feature-film length: a rating of r stands for watching r / 5 of it.
NOMINAL_MOVIE_SECONDS = 7200.0
# Unrated movies shown beside each rated one in a sampled slate (ranking needs shown-not-watched).
SAMPLED_NEGATIVES_PER_RATING = 4
IMPRESSION_LEAD_SECONDS = 60
COUNTRY = "US"  # GroupLens's site; MovieLens records no country (zip codes are not used).
DEVICE = "desktop"  # MovieLens is a web site; it records no device.

ML100K_GENRES = (
    "unknown", "Action", "Adventure", "Animation", "Children's", "Comedy", "Crime", "Documentary", "Drama",
    "Fantasy", "Film-Noir", "Horror", "Musical", "Mystery", "Romance", "Sci-Fi", "Thriller", "War", "Western",
)  # fmt: skip
# The first listed genre, mapped to the closest category of vidrec.schema.CATEGORIES; every other
# genre (and "no genre") is a film.
GENRE_CATEGORIES = {"Comedy": "comedy", "Musical": "music", "Documentary": "education"}
DEFAULT_CATEGORY = "film"

NOTES = {
    "watches": "watches: one per rating at its timestamp; watch_seconds = rating / 5 x "
    f"{NOMINAL_MOVIE_SECONDS:.0f} s (nominal movie length); liked = rating >= 4, disliked = rating <= 2, "
    "shared = false",
    "videos": "videos: every movie; creator_id = video_id (MovieLens has no creators); duration_seconds = "
    f"{NOMINAL_MOVIE_SECONDS:.0f} (nominal); category = first genre mapped: Comedy->comedy, Musical->music, "
    "Documentary->education, any other genre or none->film; title_tokens = lower-cased title words without the year",
    "impressions": "impressions: sampled, not logged (MovieLens has no exposures): each rating becomes a "
    f"home slate of the rated movie plus {SAMPLED_NEGATIVES_PER_RATING} movies the user never rated, drawn "
    "uniformly from movies released by then, shown 60 s before the rating; the rated movie's position is random; source and source_score: null "
    "(no retrieval source nominated them)",
    "subscriptions": "subscriptions: none in MovieLens; the table is empty",
    "users": f"users: country = {COUNTRY!r} and device = {DEVICE!r} for everyone (constants, not data); "
    "signup_time = the user's first rating or tag",
}


def load_movielens(path: Path, limit_users: int | None = None, seed: int = 7) -> ImportedLogs:
    """Read either MovieLens layout under `path` into raw tables (nothing is written)."""
    path = Path(path)
    if (path / "u.data").is_file():
        return _load_ml100k(path, limit_users, seed)
    if (path / "ratings.csv").is_file():
        return _load_csv_layout(path, limit_users, seed)
    raise DatasetImportError(
        f"{path}: not a MovieLens directory; expected u.data, u.item, u.user (ml-100k) "
        "or ratings.csv, movies.csv and optionally tags.csv (ml-latest-small, ml-25m)"
    )


def _load_ml100k(path: Path, limit_users: int | None, seed: int) -> ImportedLogs:
    layout = "ml-100k"
    ratings = _read_headerless(require_file(path, "u.data", layout), ["user_id", "video_id", "rating", "timestamp"], "\t")
    item_columns = ["video_id", "title", "release_date", "video_release_date", "imdb_url", *ML100K_GENRES]
    items = _read_headerless(require_file(path, "u.item", layout), item_columns, "|")
    people = _read_headerless(require_file(path, "u.user", layout), ["user_id", "age", "gender", "occupation", "zip"], "|")
    ratings = _ratings(ratings, path / "u.data")
    for column in ("video_id", *ML100K_GENRES):
        items[column] = numeric_column(items, column, path / "u.item").astype(np.int64)
    people["user_id"] = numeric_column(people, "user_id", path / "u.user").astype(np.int64)
    people["age"] = numeric_column(people, "age", path / "u.user")

    genre_flags = items[list(ML100K_GENRES)].to_numpy() == 1
    first_genre = np.where(genre_flags.any(axis=1), np.asarray(ML100K_GENRES)[genre_flags.argmax(axis=1)], "unknown")
    release_time = pd.to_datetime(items["release_date"], format="%d-%b-%Y", errors="coerce")
    catalog = pd.DataFrame(
        {
            "video_id": items["video_id"],
            "title": items["title"].fillna("").astype(str).replace("unknown", ""),
            "first_genre": first_genre,
            "release_time": release_time,
        }
    )
    user_ids = sample_user_ids(people["user_id"], limit_users, seed)
    ratings = _known_movies(ratings[ratings["user_id"].isin(user_ids)], catalog, path / "u.data")
    people = people[people["user_id"].isin(user_ids)]
    demographics = pd.DataFrame(
        {
            "user_id": people["user_id"],
            "age_bucket": people["age"].map(age_bucket),
            "gender": people["gender"].map({"M": "male", "F": "female"}).fillna("unknown"),
        }
    )
    notes = [
        NOTES["watches"],
        NOTES["videos"] + "; upload_time = release date (u.item), or the first rating if earlier or missing",
        NOTES["impressions"],
        "searches: none (ml-100k has no tags); the table is empty",
        NOTES["subscriptions"],
        NOTES["users"] + "; age -> age_bucket (ages under 13 -> '13-17', the youngest bucket); "
        "gender M/F -> male/female; occupation and zip are not used",
    ]
    return _imported(layout, path, limit_users, seed, ratings, catalog, demographics, empty_frame("searches"), notes)


def _load_csv_layout(path: Path, limit_users: int | None, seed: int) -> ImportedLogs:
    layout = "csv (ml-latest-small, ml-25m)"
    ratings_path = require_file(path, "ratings.csv", layout)
    movies_path = require_file(path, "movies.csv", layout)
    ratings = _ratings(read_csv_checked(ratings_path, ["userId", "movieId", "rating", "timestamp"]).rename(
        columns={"userId": "user_id", "movieId": "video_id"}), ratings_path)  # fmt: skip
    movies = read_csv_checked(movies_path, ["movieId", "title", "genres"], dtype={"title": str, "genres": str})
    movies["movieId"] = numeric_column(movies, "movieId", movies_path).astype(np.int64)
    titles = movies["title"].fillna("").astype(str)
    years = titles.map(title_year)
    catalog = pd.DataFrame(
        {
            "video_id": movies["movieId"],
            "title": titles,
            "first_genre": movies["genres"].fillna("").str.split("|").str[0],
            "release_time": pd.to_datetime(years.astype("Int64").astype("string"), format="%Y", errors="coerce"),
        }
    )
    tags_path = path / "tags.csv"
    tags = None
    if tags_path.exists():
        tags = read_csv_checked(tags_path, ["userId", "movieId", "tag", "timestamp"], dtype={"tag": str})
        tags = tags.rename(columns={"userId": "user_id"})
        tags["user_id"] = numeric_column(tags, "user_id", tags_path).astype(np.int64)
        tags["timestamp"] = numeric_column(tags, "timestamp", tags_path).astype(np.int64)

    all_user_ids = ratings["user_id"] if tags is None else pd.concat([ratings["user_id"], tags["user_id"]])
    user_ids = sample_user_ids(all_user_ids, limit_users, seed)
    ratings = _known_movies(ratings[ratings["user_id"].isin(user_ids)], catalog, ratings_path)
    searches = empty_frame("searches") if tags is None else _tag_searches(tags[tags["user_id"].isin(user_ids)])
    demographics = pd.DataFrame({"user_id": user_ids, "age_bucket": "unknown", "gender": "unknown"})
    notes = [
        NOTES["watches"],
        NOTES["videos"] + "; upload_time = 1 January of the title's year, or the first rating if earlier or "
        "missing (the earliest event of the dataset for a never-rated movie without a year)",
        NOTES["impressions"],
        "searches: one per (user, tag timestamp), query_tokens = the lower-cased words of the tag(s)"
        if tags is not None
        else "searches: none (no tags.csv); the table is empty",
        NOTES["subscriptions"],
        NOTES["users"] + "; the CSV layout has no demographics: age_bucket = 'unknown', gender = 'unknown'",
    ]
    return _imported("csv", path, limit_users, seed, ratings, catalog, demographics, searches, notes)


def age_bucket(age: float) -> str:
    """The schema's age bucket for an age in years; under-13s go to the youngest bucket."""
    if age < 18:
        return "13-17"
    if age < 25:
        return "18-24"
    if age < 35:
        return "25-34"
    if age < 45:
        return "35-44"
    if age < 55:
        return "45-54"
    return "55+"


def _imported(
    layout: str,
    path: Path,
    limit_users: int | None,
    seed: int,
    ratings: pd.DataFrame,
    catalog: pd.DataFrame,
    demographics: pd.DataFrame,
    searches: pd.DataFrame,
    notes: list[str],
) -> ImportedLogs:
    watches = _watches(ratings)
    first_activity = pd.concat(
        [watches[["user_id", "watch_time"]].rename(columns={"watch_time": "time"}),
         searches[["user_id", "search_time"]].rename(columns={"search_time": "time"})]
    ).groupby("user_id")["time"].min()  # fmt: skip
    users = demographics.assign(
        signup_time=demographics["user_id"].map(first_activity),
        country=COUNTRY,
        device=DEVICE,
    )
    inactive = users["signup_time"].isna()
    if inactive.any():
        notes = [*notes, f"users: {int(inactive.sum())} user(s) without any rating or tag are left out"]
        users = users[~inactive]
    if limit_users is not None:
        notes = [*notes, f"sample: {len(users)} user(s) drawn with seed {seed} (--limit-users {limit_users}); "
                 "their ratings and tags only, the whole movie catalog"]  # fmt: skip
    videos = _videos(catalog, watches)
    frames = {
        "users": users[["user_id", "signup_time", "country", "device", "age_bucket", "gender"]].reset_index(drop=True),
        "videos": videos,
        "impressions": sampled_impressions(watches, videos, SAMPLED_NEGATIVES_PER_RATING, seed),
        "watches": watches,
        "searches": searches,
        "subscriptions": empty_frame("subscriptions"),
    }
    parameters = {
        "path": str(path.resolve()),
        "layout": layout,
        "limit_users": limit_users,
        "seed": seed,
        "nominal_movie_seconds": NOMINAL_MOVIE_SECONDS,
        "sampled_negatives_per_rating": SAMPLED_NEGATIVES_PER_RATING,
    }
    return ImportedLogs(source=SOURCE, frames=frames, parameters=parameters, notes=notes)


def sampled_impressions(watches: pd.DataFrame, videos: pd.DataFrame, negatives: int, seed: int) -> pd.DataFrame:
    """One home slate per rating: the rated movie and `negatives` movies the user never rated.

    Negatives are drawn uniformly among movies released by the rating's time (rejection-sampled
    against the user's ratings, a few rounds; a slate may come out shorter when a user rated
    almost everything released). The slate is shown IMPRESSION_LEAD_SECONDS before the rating, so
    the rating reads as the click on it.
    """
    rng = np.random.default_rng(seed)
    by_release = videos.sort_values("upload_time")
    released_ids = by_release["video_id"].to_numpy(np.int64)
    released_times = by_release["upload_time"].to_numpy()
    rated = set(zip(watches["user_id"].to_numpy().tolist(), watches["video_id"].to_numpy().tolist()))
    users = np.repeat(watches["user_id"].to_numpy(np.int64), negatives)
    times = np.repeat(watches["watch_time"].to_numpy(), negatives)
    available = np.maximum(np.searchsorted(released_times, times, side="right"), 1)
    drawn = np.zeros(len(users), dtype=np.int64)
    pending = np.arange(len(users))
    for _ in range(10):
        if not len(pending):
            break
        candidates = released_ids[(rng.random(len(pending)) * available[pending]).astype(np.int64)]
        accepted = np.fromiter(
            ((user, video) not in rated for user, video in zip(users[pending].tolist(), candidates.tolist())),
            dtype=bool, count=len(pending),
        )
        drawn[pending[accepted]] = candidates[accepted]
        pending = pending[~accepted]
    slate = np.repeat(np.arange(len(watches)), negatives)
    keep = drawn > 0
    # One request per rating (a user can rate several movies within one second).
    request_ids = ("ml-" + watches["user_id"].astype(str) + "-" + pd.Series(np.arange(len(watches))).astype(str)).to_numpy()
    shown_time = watches["watch_time"].to_numpy() - np.timedelta64(IMPRESSION_LEAD_SECONDS, "s")
    rated_position = rng.integers(0, negatives + 1, len(watches))
    negatives_frame = pd.DataFrame({"slate": slate[keep], "video_id": drawn[keep]})
    negatives_frame["rank"] = negatives_frame.groupby("slate").cumcount()
    negatives_frame["position"] = negatives_frame["rank"] + (negatives_frame["rank"] >= rated_position[negatives_frame["slate"]])
    positives_frame = pd.DataFrame({"slate": np.arange(len(watches)), "video_id": watches["video_id"].to_numpy(np.int64),
                                    "position": rated_position})
    shown = pd.concat([positives_frame, negatives_frame[["slate", "video_id", "position"]]], ignore_index=True)
    shown = shown.drop_duplicates(["slate", "video_id"]).sort_values(["slate", "position"])
    return pd.DataFrame(
        {
            "request_id": request_ids[shown["slate"]],
            "user_id": watches["user_id"].to_numpy(np.int64)[shown["slate"]],
            "video_id": shown["video_id"].to_numpy(np.int64),
            "surface": "home",
            "position": shown["position"].to_numpy(np.int32),
            "impression_time": shown_time[shown["slate"]],
            "source": None,  # sampled slates were nominated by no retrieval source
            "source_score": np.nan,
        }
    ).reset_index(drop=True)


def _read_headerless(path: Path, columns: list[str], separator: str) -> pd.DataFrame:
    """Read an ml-100k file (no header); too few fields per line is a missing-column error."""
    try:
        frame = pd.read_csv(path, sep=separator, header=None, encoding="latin-1", dtype=str, keep_default_na=False)
    except (OSError, pd.errors.ParserError, pd.errors.EmptyDataError) as error:
        raise DatasetImportError(f"{path}: cannot read: {error}") from error
    if frame.shape[1] < len(columns):
        raise DatasetImportError(
            f"{path.name}: missing column(s) {columns[frame.shape[1]:]}; expected {len(columns)} fields "
            f"{columns} separated by {separator!r}, found {frame.shape[1]} (file {path})"
        )
    frame = frame.iloc[:, : len(columns)]
    frame.columns = columns
    return frame.replace("", None)


def _ratings(ratings: pd.DataFrame, path: Path) -> pd.DataFrame:
    return pd.DataFrame(
        {
            "user_id": numeric_column(ratings, "user_id", path).astype(np.int64),
            "video_id": numeric_column(ratings, "video_id", path).astype(np.int64),
            "rating": numeric_column(ratings, "rating", path).astype(float),
            "timestamp": numeric_column(ratings, "timestamp", path).astype(np.int64),
        }
    )


def _known_movies(ratings: pd.DataFrame, catalog: pd.DataFrame, path: Path) -> pd.DataFrame:
    unknown = ~ratings["video_id"].isin(catalog["video_id"])
    if unknown.any():
        raise DatasetImportError(
            f"{path.name}: {int(unknown.sum())} rating(s) of movie id(s) not in the movie list, "
            f"e.g. {int(ratings.loc[unknown, 'video_id'].iloc[0])} (file {path})"
        )
    return ratings


def _watches(ratings: pd.DataFrame) -> pd.DataFrame:
    rating = ratings["rating"].to_numpy(dtype=float)
    watches = pd.DataFrame(
        {
            "user_id": ratings["user_id"].to_numpy(np.int64),
            "video_id": ratings["video_id"].to_numpy(np.int64),
            "watch_time": unix_seconds_to_time(ratings["timestamp"]).to_numpy(),
            "watch_seconds": rating / MAX_RATING * NOMINAL_MOVIE_SECONDS,
            "liked": rating >= 4,
            "shared": np.zeros(len(rating), dtype=bool),
            "disliked": rating <= 2,
        }
    )
    return watches.drop_duplicates(["user_id", "video_id", "watch_time"]).reset_index(drop=True)


def _videos(catalog: pd.DataFrame, watches: pd.DataFrame) -> pd.DataFrame:
    first_watch = catalog["video_id"].map(watches.groupby("video_id")["watch_time"].min())
    upload_time = pd.concat([catalog["release_time"], first_watch], axis=1).min(axis=1)
    if upload_time.isna().any():
        earliest = watches["watch_time"].min() if len(watches) else pd.Timestamp("1995-01-01")
        upload_time = upload_time.fillna(earliest)
    return pd.DataFrame(
        {
            "video_id": catalog["video_id"].to_numpy(np.int64),
            "creator_id": catalog["video_id"].to_numpy(np.int64),
            "category": catalog["first_genre"].map(GENRE_CATEGORIES).fillna(DEFAULT_CATEGORY).to_numpy(),
            "duration_seconds": NOMINAL_MOVIE_SECONDS,
            "upload_time": upload_time.astype("datetime64[us]").to_numpy(),
            "title_tokens": catalog["title"].map(title_tokens).to_numpy(),
        }
    )


def _tag_searches(tags: pd.DataFrame) -> pd.DataFrame:
    """One search per (user, timestamp): the words of every tag the user applied at that second."""
    tokens = tags["tag"].fillna("").astype(str).map(words)
    keyed = pd.DataFrame({"user_id": tags["user_id"], "timestamp": tags["timestamp"], "tokens": tokens})
    keyed = keyed[keyed["tokens"].map(len) > 0]
    grouped = (
        keyed.groupby(["user_id", "timestamp"], sort=True)["tokens"]
        .agg(lambda token_lists: [token for tokens in token_lists for token in tokens])
        .reset_index()
    )
    return pd.DataFrame(
        {
            "user_id": grouped["user_id"].astype(np.int64),
            "search_time": unix_seconds_to_time(grouped["timestamp"]),
            "query_tokens": grouped["tokens"],
        }
    )
