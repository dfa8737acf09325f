from pathlib import Path

import pytest

from alaas_lab import ConfigError, load_config
from alaas_lab.config import Config

EXAMPLES = sorted((Path(__file__).parents[1] / "examples").glob("*.yml"))

PAPER_YAML = """
name: "IMG_CLASSIFICATION"
version: 0.1
active_learning:
  strategy: {type: "least_confidence"}
  model: {name: "resnet18", hub_name: "pytorch/vision:release/0.12", batch_size: 1}
  device: CPU
al_worker: {protocol: "tcp", host: "127.0.0.1", port: 60035, replicas: 1}
"""


def test_defaults_are_loopback_and_valid():
    config = load_config()
    assert config == Config()
    assert config.al_worker.host == "127.0.0.1"


def test_reads_the_papers_shape_from_yaml_text():
    config = load_config(PAPER_YAML)
    assert config.name == "IMG_CLASSIFICATION"
    assert config.version == "0.1"
    assert config.active_learning.strategy.type == "least_confidence"
    assert config.active_learning.model.hub_name == "pytorch/vision:release/0.12"
    assert config.active_learning.model.batch_size == 1
    assert config.active_learning.device == "cpu"
    assert config.al_worker.port == 60035


@pytest.mark.parametrize("path", EXAMPLES, ids=lambda p: p.name)
def test_example_configs_load(path):
    config = load_config(path)
    assert config.name
    assert load_config(config.to_dict()) == config


def test_round_trip_and_replace():
    config = load_config(PAPER_YAML)
    assert load_config(config.to_dict()) == config
    changed = config.replace(seed=7, classes=["a", "b"])
    assert changed.seed == 7 and changed.classes == ("a", "b")
    assert changed.active_learning == config.active_learning


@pytest.mark.parametrize(
    ("raw", "match"),
    [
        ({"nmae": "x"}, r"unknown config key 'nmae'\. Did you mean 'name'\?"),
        ({"active_learning": {"strategy": {"tpye": "margin"}}},
         r"unknown config key 'active_learning\.strategy\.tpye'.*Did you mean 'type'"),
        ({"active_learning": {"strategy": {"type": "least_confidance"}}},
         r"'active_learning\.strategy\.type' has a bad value 'least_confidance'; "
         r"allowed: one of: .*least_confidence.*Did you mean 'least_confidence'"),
        ({"active_learning": {"model": {"name": "vgg"}}},
         r"'active_learning\.model\.name'.*one of: flatten, resnet18, minilm"),
        ({"active_learning": {"model": {"batch_size": 0}}},
         r"'active_learning\.model\.batch_size' has a bad value 0; allowed: an integer between 1"),
        ({"active_learning": {"model": {"batch_size": "32"}}},
         r"'active_learning\.model\.batch_size'.*an integer"),
        ({"active_learning": {"device": "gpu"}}, r"'active_learning\.device'.*cuda:<index>"),
        ({"al_worker": {"protocol": "grpc"}}, r"'al_worker\.protocol'.*one of: tcp, ipc"),
        ({"al_worker": {"port": 70000}}, r"'al_worker\.port'.*between 0 and 65535"),
        ({"al_worker": {"replicas": True}}, r"'al_worker\.replicas'.*an integer"),
        ({"target_accuracy": 1.5}, r"'target_accuracy'.*between 0\.0 and 1\.0"),
        ({"budget": {"total": -1}}, r"'budget\.total'.*>= 0"),
        ({"budget": {"total": 10, "per_round": 20}},
         r"'budget\.per_round' \(20\).*'budget\.total'"),
        ({"classes": ["a", "a"]}, r"'classes'.*without duplicates"),
        ({"classes": [1.5, 2]}, r"'classes\[0\]'.*a string"),
        ({"data": {"kind": "video"}}, r"'data\.kind'.*image, text, array"),
        ({"al_worker": 5}, r"'al_worker' must be a mapping"),
        ({"active_learning": {"strategy": {"type": "margin", "candidates": ["random"]}}},
         r"candidates' is only used when.*'auto'"),
        ({"executor": {"kind": "dask"}}, r"'executor\.address' is required"),
    ],
)
def test_bad_values_name_the_key_path_and_the_allowed_values(raw, match):
    with pytest.raises(ConfigError, match=match):
        load_config(raw)


def test_device_accepts_cuda_index():
    assert load_config({"active_learning": {"device": "CUDA:1"}}).active_learning.device == "cuda:1"


def test_auto_with_candidates():
    config = load_config(
        {"active_learning": {"strategy": {"type": "auto", "candidates": ["margin", "random"]}}})
    assert config.active_learning.strategy.candidates == ("margin", "random")


def test_single_source_string_becomes_a_list():
    assert load_config({"data": {"source": "s3://b/*.png"}}).data.source == ("s3://b/*.png",)


def test_malformed_yaml_names_the_line(tmp_path):
    path = tmp_path / "bad.yml"
    path.write_text("name: x\nactive_learning: {strategy: [\n")
    with pytest.raises(ConfigError, match=r"bad\.yml is not valid YAML at line \d+"):
        load_config(path)


def test_missing_file_and_non_mapping(tmp_path):
    with pytest.raises(ConfigError, match="does not exist"):
        load_config(tmp_path / "nope.yml")
    with pytest.raises(ConfigError, match="must be a YAML mapping"):
        load_config("- just\n- a list\n")
