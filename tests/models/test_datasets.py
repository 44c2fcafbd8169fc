import numpy as np
import pytest

from models.evaluation.datasets import from_raw_logs
from vidrec.settings import VidrecSettings
from vidrec.simulator import SimulationConfig, simulate, simulate_world


@pytest.fixture(scope="module")
def simulated_home(tmp_path_factory):
    settings = VidrecSettings(home=tmp_path_factory.mktemp("home"))
    config = SimulationConfig(users=60, videos=80, days=4, seed=3)
    simulate(settings, config)
    return settings, config


def test_a_simulated_raw_log_directory_loads_with_every_table_and_its_ground_truth(simulated_home):
    settings, config = simulated_home
    dataset = from_raw_logs(settings.raw_dir)
    tables, world = simulate_world(config)
    assert dataset.name == "simulator"
    assert len(dataset.interactions) == len(tables["watches"])
    assert list(dataset.interactions.columns) == ["user_id", "video_id", "time"]
    assert len(dataset.catalog) == config.videos and dataset.demographics is not None
    users, videos = np.array([1, 2]), np.array([5, 7, 9])
    expected = world.affinity_matrix(users - 1, videos - 1)
    assert np.allclose(dataset.true_affinity(users, videos), expected, atol=1e-4)


def test_a_directory_without_raw_logs_is_named_in_the_error(tmp_path):
    with pytest.raises(FileNotFoundError, match="no watches/ table"):
        from_raw_logs(tmp_path)
