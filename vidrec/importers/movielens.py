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
# Movies shown beside each rated one in a sampled slate (ranking needs shown-not-watched).
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
    f"home slate shown 60 s before it (time t): the rated movie plus up to {SAMPLED_NEGATIVES_PER_RATING} "
    "movies drawn from the ratings strictly before t (a movie in proportion to its rating count before t; "
    "never one nobody had rated yet, nor one the user had rated before t; nothing at or after t decides a "
    "draw, so a movie the user rates later can be shown); the rated movie's position is random; source and "
    "source_score: null (no retrieval source nominated them)",
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
    rating_columns = ["user_id", "video_id", "rating", "timestamp"]
    ratings = _read_headerless(require_file(path, "u.data", layout), rating_columns, "\t")
    item_columns = ["video_id", "title", "release_date", "video_release_date", "imdb_url", *ML100K_GENRES]
    items = _read_headerless(require_file(path, "u.item", layout), item_columns, "|")
    people_columns = ["user_id", "age", "gender", "occupation", "zip"]
    people = _read_headerless(require_file(path, "u.user", layout), people_columns, "|")
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
        "impressions": sampled_impressions(watches, SAMPLED_NEGATIVES_PER_RATING, seed),
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


def sampled_impressions(watches: pd.DataFrame, negatives: int, seed: int) -> pd.DataFrame:
    """One home slate per rating: the rated movie and up to `negatives` movies drawn beside it.

    The slate is shown at t = IMPRESSION_LEAD_SECONDS before the rating, so the rating reads as
    the click on it. Its negatives are drawn the way a popularity-driven system could have chosen
    them at t, from the ratings strictly before t only: a uniformly drawn earlier rating's movie
    (so a movie is drawn in proportion to its rating count before t, and one nobody had rated yet
    cannot be drawn), rejecting the movies the user had rated before t, the slate's own rated
    movie and repeats. Nothing at or after t decides a draw, the user's later ratings included: a
    movie the user rates later may be drawn like any other (one rated within 30 minutes of the
    slate then counts as a click in the marts). The random numbers are a hash of (seed, user,
    rated movie, rating time, draw), so a slate does not change when other ratings are added or
    removed. A slate comes out shorter when rejection runs out of draws (a user who had rated
    most of what existed) or nothing was rated before t (the dataset's first ratings).
    """
    user_ids = watches["user_id"].to_numpy(np.int64)
    rated_ids = watches["video_id"].to_numpy(np.int64)
    rating_seconds = watches["watch_time"].to_numpy().astype("datetime64[s]").astype(np.int64)
    shown_seconds = rating_seconds - IMPRESSION_LEAD_SECONDS
    drawn = _draw_negatives(user_ids, rated_ids, rating_seconds, shown_seconds, negatives, seed)  # (ratings, negatives)

    slot = np.arange(negatives + 1)[None, :]
    position_draw = _uniform_hash(seed, user_ids, rated_ids, rating_seconds, np.full_like(user_ids, -1))
    rated_position = (position_draw * (negatives + 1)).astype(np.int64)
    # Negatives fill the other slots in draw order; an undrawn one leaves no gap.
    slate_videos = np.where(slot == rated_position[:, None], rated_ids[:, None], 0)
    slate_videos[slot != rated_position[:, None]] = drawn.ravel()
    kept = slate_videos > 0
    positions = np.cumsum(kept, axis=1) - 1
    slate = np.broadcast_to(np.arange(len(watches))[:, None], kept.shape)[kept]
    # One request per rating, named by it (a user can rate several movies within one second).
    user_text, movie_text, seconds_text = (pd.Series(ids).astype(str) for ids in (user_ids, rated_ids, rating_seconds))
    request_ids = ("ml-" + user_text + "-" + movie_text + "-" + seconds_text).to_numpy()
    shown_time = watches["watch_time"].to_numpy() - np.timedelta64(IMPRESSION_LEAD_SECONDS, "s")
    return pd.DataFrame(
        {
            "request_id": request_ids[slate],
            "user_id": user_ids[slate],
            "video_id": slate_videos[kept],
            "surface": "home",
            "position": positions[kept].astype(np.int32),
            "impression_time": shown_time[slate],
            "source": None,  # sampled slates were nominated by no retrieval source
            "source_score": np.nan,
        }
    )


# Rejection draws per negative before a slate is left shorter.
MAX_DRAWS_PER_NEGATIVE = 64


def _draw_negatives(
    user_ids: np.ndarray,
    rated_ids: np.ndarray,
    rating_seconds: np.ndarray,
    shown_seconds: np.ndarray,
    negatives: int,
    seed: int,
) -> np.ndarray:
    """(ratings, negatives) movie ids drawn as `sampled_impressions` describes; 0 where none was."""
    # Every rating by time, ties by user and movie: the order of those before t depends on nothing later.
    order = np.lexsort((rated_ids, user_ids, rating_seconds))
    movies_by_time, seconds_by_time = rated_ids[order], rating_seconds[order]
    ratings_before = np.searchsorted(seconds_by_time, shown_seconds, side="left")  # strictly before t
    # Each user's first rating time per movie, looked up by one sorted key per (user, movie).
    movie_id_bound = int(rated_ids.max(initial=0)) + 1
    pairs = pd.Series(rating_seconds).groupby(user_ids * movie_id_bound + rated_ids).min()
    sorted_pair_keys, first_rated_seconds = pairs.index.to_numpy(np.int64), pairs.to_numpy(np.int64)

    def rated_by_user_before(rows: np.ndarray, movies: np.ndarray) -> np.ndarray:
        keys = user_ids[rows] * movie_id_bound + movies
        found = np.minimum(np.searchsorted(sorted_pair_keys, keys), len(sorted_pair_keys) - 1)
        return (sorted_pair_keys[found] == keys) & (first_rated_seconds[found] < shown_seconds[rows])

    drawn = np.zeros((len(user_ids), negatives), dtype=np.int64)
    for column in range(negatives):
        pending = np.flatnonzero(ratings_before > 0)
        for attempt in range(MAX_DRAWS_PER_NEGATIVE):
            if not len(pending):
                break
            draw = np.full(len(pending), column * MAX_DRAWS_PER_NEGATIVE + attempt)
            uniform = _uniform_hash(seed, user_ids[pending], rated_ids[pending], rating_seconds[pending], draw)
            movies = movies_by_time[(uniform * ratings_before[pending]).astype(np.int64)]
            accepted = (
                (movies != rated_ids[pending])
                & (drawn[pending, :column] != movies[:, None]).all(axis=1)
                & ~rated_by_user_before(pending, movies)
            )
            drawn[pending[accepted], column] = movies[accepted]
            pending = pending[~accepted]
    return drawn


def _uniform_hash(seed: int, *keys: np.ndarray) -> np.ndarray:
    """Numbers in [0, 1), one per row, each a function of its row's integer keys and the seed only.

    A counter-based generator (SplitMix64's finaliser applied after each key): unlike a stream
    drawn from `numpy.random`, a row's number does not move when rows are added or removed.
    """
    state = np.full(len(keys[0]), seed & 0xFFFF_FFFF_FFFF_FFFF, dtype=np.uint64)
    for key in keys:
        state = _splitmix64(state ^ np.asarray(key).astype(np.uint64))
    return (state >> np.uint64(11)).astype(np.float64) * 2.0**-53


def _splitmix64(state: np.ndarray) -> np.ndarray:
    with np.errstate(over="ignore"):
        mixed = state + np.uint64(0x9E3779B97F4A7C15)
        mixed = (mixed ^ (mixed >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
        mixed = (mixed ^ (mixed >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
        return mixed ^ (mixed >> np.uint64(31))


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
