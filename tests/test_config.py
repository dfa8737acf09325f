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
al_worker: {protocol: "tcp", host: "127.0.0.1", port: 60035}
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
    # torch.hub.load("pytorch/vision:...", "resnet18", pretrained=True): torchvision's model
    assert config.active_learning.model.name == "torchvision/resnet18"
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
         r"'active_learning\.model\.name'.*one of: .*efficientnet_lite0, flatten, minilm, "
         r"resnet18, torchscript, torchvision/<model>"),
        ({"active_learning": {"model": {"batch_size": 0}}},
         r"'active_learning\.model\.batch_size' has a bad value 0; allowed: an integer between 1"),
        ({"active_learning": {"model": {"batch_size": "32"}}},
         r"'active_learning\.model\.batch_size'.*an integer"),
        ({"active_learning": {"device": "gpu"}}, r"'active_learning\.device'.*cuda:<index>"),
        ({"al_worker": {"protocol": "grpc"}}, r"'al_worker\.protocol'.*one of: tcp, ipc"),
        ({"al_worker": {"port": 70000}}, r"'al_worker\.port'.*between 0 and 65535"),
        ({"al_worker": {"replicas": 2}},
         r"config key 'al_worker\.replicas' is no longer read: a session has one worker "
         r"process.*set 'executor: \{kind: dask, address: tcp://<scheduler>:8786\}' instead"),
        ({"active_learning": {"model": {"name": "dino_vits16",
                                        "hub_name": "facebookresearch/dino:main"}}},
         r"'active_learning\.model\.hub_name' has 'facebookresearch/dino:main'; only "
         r"'pytorch/vision'.*models\.register_backbone"),
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


@pytest.mark.parametrize(
    ("model", "name"),
    [
        ({"name": "resnet18", "hub_name": "pytorch/vision"}, "torchvision/resnet18"),
        ({"name": "efficientnet_b0", "hub_name": "pytorch/vision:v0.16.0"},
         "torchvision/efficientnet_b0"),
        ({"name": "torchvision/resnet50", "hub_name": "pytorch/vision:main"},
         "torchvision/resnet50"),
        ({"name": "resnet18"}, "resnet18"),  # without hub_name: the registry's own resnet18
    ],
)
def test_hub_name_pytorch_vision_names_torchvisions_model(model, name):
    config = load_config({"active_learning": {"model": model}})
    assert config.active_learning.model.name == name
    assert config.active_learning.model.hub_name == model.get("hub_name")
    assert load_config(config.to_dict()) == config  # stable through a round trip


def test_hub_name_model_builds_torchvisions_network():
    """The name hub_name gives is one the registry builds (here offline, from a state_dict)."""
    import torch
    import torchvision

    from alaas_lab.models import backbone, config_kwargs

    model = load_config({"active_learning": {"model": {
        "name": "resnet18", "hub_name": "pytorch/vision:release/0.12"}}}).active_learning.model
    state = torchvision.models.resnet18(num_classes=10).state_dict()
    bb = backbone(model.name, **{**config_kwargs(model), "weights": state, "size": 32})
    assert bb.name == "torchvision/resnet18" and bb.dim == 512
    assert bb.embed(torch.zeros(2, 3, 32, 32)).shape == (2, 512)


def test_names_come_from_the_live_registries():
    """A backbone or strategy registered at run time (as a plugin does) is accepted at once."""
    from alaas_lab import models, strategies
    from alaas_lab.models import _registry as backbones
    from alaas_lab.strategies import _registry as zoo

    with pytest.raises(ConfigError, match="'active_learning.model.name' has a bad value 'mynet'"):
        load_config({"active_learning": {"model": {"name": "mynet"}}})
    models.register_backbone("mynet", "alaas_lab.models.backbones:FlattenBackbone")
    strategies.register("mine", lambda probs, k, **_: [0], needs={"probs"})
    try:
        config = load_config({"active_learning": {"model": {"name": "mynet"},
                                                  "strategy": {"type": "mine"}}})
        assert config.active_learning.model.name == "mynet"
        assert config.active_learning.strategy.type == "mine"
        with pytest.raises(ConfigError, match=r"one of: .*mynet.*Did you mean 'mynet'"):
            load_config({"active_learning": {"model": {"name": "mynett"}}})
        with pytest.raises(ConfigError, match=r"one of: .*mine.*Did you mean 'mine'"):
            load_config({"active_learning": {"strategy": {"type": "mien"}}})
    finally:
        backbones._BACKBONES.pop("mynet", None)
        zoo._REGISTRY.pop("mine", None)

