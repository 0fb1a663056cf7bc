"""speed: the calibration of this machine and the expected minutes that read it (issue 29)."""
import torch

from smplora_nb import __main__ as cli
from smplora_nb import config, paths, runner, speed, tinybase


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
    monkeypatch.setattr(speed, "_measured", 3.0)
    monkeypatch.setattr(speed, "_measure", lambda: speed.REFERENCE_STEP)    # the command measures again
    assert cli.main(["speed"]) == 0
    out = capsys.readouterr().out
    assert "(x1.00)" in out and all(stem in out for stem in speed.DEMO_MINUTES)


def test_a_stored_calibration_serves_the_next_processes_of_this_machine_for_an_hour(monkeypatch, tmp_path):
    """The six notebooks of `make demo` measure once: a new process (``_measured`` None) reads this machine's stored
    pass time; one stored over ``MAX_AGE`` seconds ago, on another machine or damaged is measured again."""
    measured = []
    monkeypatch.setattr(speed, "_measure", lambda: measured.append(0.2) or 0.2)
    monkeypatch.setattr(speed, "_measured", None)
    assert speed.calibrate() == 0.2 and len(measured) == 1
    stored = tmp_path / "smplora_outputs" / "cache" / "speed.json"
    assert paths.read_json(stored)["machine"] == speed.machine()
    monkeypatch.setattr(speed, "_measured", None)                        # the next notebook's kernel
    assert speed.calibrate() == 0.2 and len(measured) == 1
    rec = paths.read_json(stored)
    for changed in ({"at": rec["at"] - speed.MAX_AGE - 1}, {"machine": {**rec["machine"], "cores": -1}}):
        paths.write_json(stored, {**rec, **changed, "seconds": 9.0})
        monkeypatch.setattr(speed, "_measured", None)
        assert speed.calibrate() == 0.2                                   # not 9.0: measured again, and stored
    stored.write_text("{not json")
    monkeypatch.setattr(speed, "_measured", None)
    assert speed.calibrate() == 0.2 and len(measured) == 4 and paths.read_json(stored)["seconds"] == 0.2
