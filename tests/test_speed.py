"""speed: the calibration of this machine and the expected minutes that read it (issue 29)."""
import torch

from smplora_nb import __main__ as cli
from smplora_nb import config, runner, speed, tinybase


def test_the_calibration_times_the_tiny_profiles_unet_once_per_process(monkeypatch):
    monkeypatch.setattr(speed, "_measured", None)
    cfg = config.make("tiny")
    unet = speed._unet()
    assert unet.config.block_out_channels == tuple(cfg.model.unet_channels) and unet.config.sample_size == 8
    assert sum(p.numel() for p in unet.parameters()) == sum(
        p.numel() for p in tinybase.build_unet(cfg.model, cfg.data.resolution).parameters())
    state = torch.random.get_rng_state()
    first = speed.calibrate()
    assert torch.equal(torch.random.get_rng_state(), state)              # a notebook's later draws are unchanged
    assert 0 < first < 60 and speed.calibrate() == first                 # kept for the process
    monkeypatch.setattr(speed, "_measured", -1.0)
    assert speed.calibrate(again=True) > 0                               # measured again on request


def test_expected_minutes_scale_with_this_machine_over_the_reference(monkeypatch):
    assert speed.REFERENCE_STEP > 0
    assert set(speed.DEMO_MINUTES) == {nb.stem for nb in runner.list_notebooks()}
    monkeypatch.setattr(speed, "_measured", 2 * speed.REFERENCE_STEP)     # a machine twice as slow
    line = speed.expected("04_smp_lora_training")
    assert f"about {2 * speed.DEMO_MINUTES['04_smp_lora_training']:.0f} min" in line
    assert speed.expected("04_smp_lora_training", profile="paper") == "" and speed.expected("99_none") == ""
    monkeypatch.setattr(speed, "_measured", 0.5 * speed.REFERENCE_STEP)
    assert f"about {0.5 * sum(speed.DEMO_MINUTES.values()):5.1f} min" in speed.report()


def test_the_command_line_prints_the_report(monkeypatch, capsys):
    monkeypatch.setattr(speed, "_measured", speed.REFERENCE_STEP)
    assert cli.main(["speed"]) == 0
    out = capsys.readouterr().out
    assert "(x1.00)" in out and all(stem in out for stem in speed.DEMO_MINUTES)
