"""The blocklist file and the policy knobs: read once, and a bad value is named where it is."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from pydantic_settings import BaseSettings

from serving.policy import (
    Blocklist,
    BlocklistError,
    PolicyConfig,
    PolicyStage,
    load_blocklist,
    policy_config_from_settings,
    policy_settings_fields,
    reason_text,
)
from tests.serving.policy.slates import Video, candidates, user
from vidrec.settings import VidrecSettings


def test_the_blocklist_file_takes_ids_comments_and_blank_lines(tmp_path):
    path = tmp_path / "blocklist.txt"
    path.write_text("# legal takedowns\n17\n\n  23  # reported 2026-01-02\n17\n")

    blocklist = load_blocklist(path)

    assert blocklist.video_ids.tolist() == [17, 23]
    assert blocklist.contains(np.array([1, 17, 23, 99])).tolist() == [False, True, True, False]


def test_a_bad_blocklist_line_names_the_file_the_line_and_the_value(tmp_path):
    path = tmp_path / "blocklist.txt"
    path.write_text("17\n# fine\nvideo-23\n")

    with pytest.raises(BlocklistError, match=rf"blocklist {path} line 3: 'video-23' is not a video id"):
        load_blocklist(path)


@pytest.mark.parametrize("line", ["-5", "1.5", "12 13", "٣", str(2**63)])
def test_negative_fractional_several_non_ascii_or_too_large_ids_are_refused(tmp_path, line):
    path = tmp_path / "blocklist.txt"
    path.write_text(line + "\n")

    with pytest.raises(BlocklistError, match="line 1"):
        load_blocklist(path)


def test_a_missing_blocklist_file_names_the_file_and_the_setting(tmp_path):
    with pytest.raises(BlocklistError, match=r"missing\.txt does not exist \(set VIDREC_POLICY_BLOCKLIST_PATH"):
        load_blocklist(tmp_path / "missing.txt")


def test_no_blocklist_path_blocks_nothing():
    assert len(load_blocklist(None)) == 0
    assert Blocklist().contains(np.array([1, 2])).tolist() == [False, False]


def test_a_config_out_of_range_names_every_bad_knob():
    expected = r"max_per_creator must be >= 1, got 0; exploration_share must be in \[0, 1\], got 1.5"
    with pytest.raises(ValueError, match=expected):
        PolicyConfig(max_per_creator=0, exploration_share=1.5)


def test_vidrec_settings_declare_exactly_what_the_policy_reads():
    declared = {name: field.default for name, field in VidrecSettings.model_fields.items()
                if name.startswith("policy_")}

    assert declared == policy_settings_fields()


def test_policy_knobs_come_from_vidrec_policy_env_vars(monkeypatch, tmp_path):
    monkeypatch.setenv("VIDREC_POLICY_MAX_PER_CREATOR", "3")
    monkeypatch.setenv("VIDREC_POLICY_EXPLORATION_SHARE", "0.05")
    monkeypatch.setenv("VIDREC_POLICY_TRENDING_SOURCES", '["trending", "popular"]')
    monkeypatch.setenv("VIDREC_POLICY_BLOCKLIST_PATH", str(tmp_path / "blocklist.txt"))

    config = policy_config_from_settings(VidrecSettings())

    assert config.max_per_creator == 3
    assert config.exploration_share == 0.05
    assert config.trending_sources == ("trending", "popular")
    assert config.blocklist_path == tmp_path / "blocklist.txt"
    assert config.diversity_lambda == PolicyConfig().diversity_lambda


def test_settings_without_the_policy_fields_are_refused_with_the_list():
    class BareSettings(BaseSettings):
        home: Path = Path(".vidrec")

    with pytest.raises(AttributeError, match=r"BareSettings lacks the policy fields \['policy_max_per_creator'"):
        policy_config_from_settings(BareSettings())


def test_the_stage_loads_its_blocklist_once_at_construction(tmp_path):
    path = tmp_path / "blocklist.txt"
    path.write_text("1\n")
    stage = PolicyStage(PolicyConfig(blocklist_path=path, exploration_share=0.0))
    path.write_text("not a video id\n")  # read once: later edits need a restart or a new stage

    result = stage.rerank(candidates(Video(1, 0.9, creator=1), Video(2, 0.5, creator=2)), user(), k=2, request_id="r1")

    assert result.video_ids.tolist() == [2]
    with pytest.raises(BlocklistError, match="line 1"):
        PolicyStage(PolicyConfig(blocklist_path=path))


def test_reason_text_reads_like_the_ui_line():
    assert reason_text("because_you_watched", "Cats at sea") == "Because you watched Cats at sea"
    assert reason_text("new_from_subscription") == "New from a creator you follow"
    with pytest.raises(ValueError, match="needs the watched video"):
        reason_text("because_you_watched")
