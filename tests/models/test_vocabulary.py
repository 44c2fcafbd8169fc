import numpy as np
import torch

from models.retrieval.vocabulary import OOV_INDEX, Vocabulary


def test_index_zero_is_reserved_for_unknown_missing_and_rare_tokens(tmp_path):
    vocabulary = Vocabulary.build(["a", "b", "a", "c", None, "a", "b"], min_count=2)
    assert vocabulary.tokens == ["a", "b"]  # most frequent first; "c" is below min_count
    assert len(vocabulary) == 3
    assert vocabulary.encode(["a", "b", "c", "never-seen", None]).tolist() == [1, 2, 0, 0, 0]
    vocabulary.save(tmp_path / "vocabulary.json")
    assert Vocabulary.load(tmp_path / "vocabulary.json").encode(["b", "zzz"]).tolist() == [2, OOV_INDEX]


def test_integer_ids_match_whatever_their_numeric_type():
    vocabulary = Vocabulary.build([7, 7, 8])
    assert vocabulary.encode(np.array([7, 8, 9], dtype=np.int64)).tolist() == [1, 2, 0]
    assert vocabulary.encode([np.int32(8), 7.0]).tolist() == [2, 1]


def test_unknown_token_gets_a_zero_embedding():
    vocabulary = Vocabulary.build(["x", "y"])
    table = torch.nn.Embedding(len(vocabulary), 4, padding_idx=0)
    vectors = table(torch.from_numpy(vocabulary.encode(["x", "unknown"])))
    assert torch.count_nonzero(vectors[1]) == 0
    assert torch.count_nonzero(vectors[0]) > 0


def test_a_few_values_encode_exactly_as_many_do():
    import numpy as np

    from models.retrieval.vocabulary import SMALL_INPUT

    vocabulary = Vocabulary([7, "news", 3])
    values = [7, 7.0, np.int64(3), "news", None, float("nan"), "unknown", 8]
    many = (values * (SMALL_INPUT // len(values) + 1))[: SMALL_INPUT + 1]

    assert vocabulary.encode(values).tolist() == vocabulary.encode(many)[: len(values)].tolist()
    assert vocabulary.encode(np.array(values, dtype=object)).tolist() == [1, 1, 3, 2, 0, 0, 0, 0]


def test_numeric_id_arrays_encode_exactly_as_token_lookups():
    vocabulary = Vocabulary([5, 3, 900, 0])
    ints = np.array([5, 3, 1, 900, 0, -4, 10**9, 901])
    floats = np.array([5.0, 3.5, np.nan, 900.0, np.inf, -1.0, 0.0])

    assert vocabulary.holds_ids
    assert vocabulary.encode(ints).tolist() == [vocabulary.index(token) for token in ints.tolist()]
    assert (vocabulary.encode(floats).tolist() == [vocabulary.index(token) for token in floats.tolist()]
            == [1, 0, 0, 3, 0, 0, 4])


def test_vocabularies_of_other_tokens_keep_the_hash_lookup():
    assert not Vocabulary(["music", 3]).holds_ids
    assert not Vocabulary([-2, 3]).holds_ids
    assert Vocabulary(["music", 3]).encode(np.array([3.0, 4.0])).tolist() == [2, 0]
