"""The one Markdown writer and the tables of the series (``tables``), written as CSV and Markdown."""
from smplora_nb import paths, tables, viz


def test_one_markdown_writer_and_labels():
    md = tables.markdown([{"a": "x|y", "b": 0.123456}, {"a": "z", "b": None}])
    assert md.splitlines() == ["| a | b |", "|---|---:|", "| x\\|y | 0.1235 |", "| z |  |"]
    assert viz.label("dp_lora_eps8") == "DP-LoRA (eps 8)" and viz.label("loss_at_t_ref").startswith("Loss@t")
    assert viz.label("lora_early_stop") == "LoRA stopped early" and viz.label("other") == "other"


def test_tables_are_written_as_csv_and_markdown():
    rows = [{"lam": 1.0, "asr": 0.51234567, "auc_dev": 0.1, "fid": 2.0, "kid": None}]
    csv_path, md_path = tables.write("05_x", "ablation_lam", rows)
    assert csv_path.read_text().splitlines() == ["lam,asr,auc_dev,fid,kid", "1,0.5123,0.1,2,"]
    assert md_path.read_text().splitlines()[2] == "| 1 | 0.5123 | 0.1 | 2 |  |"
    tables.write_ablations("05_x", {"rank": [{"rank": 4, "asr": 0.6}]})
    assert (paths.stage_dir("05_x") / "ablation_rank.csv").read_text().splitlines()[0] == \
        "rank,asr,auc_dev,tpr_at_5pct_fpr,fid,kid,digit_accuracy,heldout_loss"
    dp = {"dp_lora_eps8": {"noise_multiplier": 0.61234, "epsilon_target": 8.0, "epsilon_spent": 7.99, "steps": 90,
                           "sample_rate": 0.148}}
    assert "| DP-LoRA (eps 8) | 0.6123 | 8 | 7.99 | 90 | 0.148 |" in tables.dp_table(dp)


def test_run_table_and_metric_table_with_extra_columns():
    logs = {("lora", 0): {"seconds_this_session": 12.4, "epochs": 3, "steps": 9},
            ("lora_early_stop", 1): {"seconds_this_session": 2.0, "epochs": 1, "steps": 3}}
    assert tables.run_table(logs).splitlines()[2:] == ["| LoRA | 0 | 12 | 3 | 9 |",
                                                       "| LoRA stopped early | 1 | 2 | 1 | 3 |"]
    rows = {"lora": {"mean": {"asr": 0.8}, "sem": {"asr": 0.01}}}
    md = tables.metric_table(rows, columns=("asr", "grad_norm_std"), extra={"lora": {"grad_norm_std": 0.25}})
    assert md.splitlines()[2] == "| LoRA | 0.800 ± 0.010 | 0.250 |"
    assert tables.metric_table(rows, columns=("asr",)) == tables.metric_table(rows, columns=("asr",), extra={})
