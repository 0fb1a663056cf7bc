"""The results explorer (``widgets``): its entries and its widgets, and the static view of a headless run."""
from smplora_nb import config, widgets


def test_explorer_entries_offer_lam_only_where_it_applies():
    tc = config.make("tiny").train
    grid = {("lam", 1.0, 0): "a", ("lam", 0.1, 0): "b", ("lora", None, 0): "c", ("mp_lora", None, 0): "d",
            ("lr", 0.1, 0): "e"}
    out = widgets.entries(grid, {("lora", 2): "f", ("smp_lora", 2): "g", ("lora", 0): "h"}, tc)
    assert out[("lora", None, 0)] == "h" and out[("smp_lora", 0.1, 0)] == "b" and out[("smp_lora", 1.0, 0)] == "a"
    assert out[("mp_lora", tc.lam, 0)] == "d" and out[("smp_lora", tc.lam, 2)] == "g" and out[("lora", None, 2)] == "f"
    assert all(k[1] is None for k in out if k[0] == "lora") and "e" not in out.values()
    assert {k[2] for k in out} == {0, 2}                                   # the third element is the split


def test_results_explorer_widgets_and_static_fallback(capsys):
    """The explorer's dropdowns offer what exists for the chosen method and redraw without error; headless, it
    draws the first view statically (metrics table, ROC, samples)."""
    import numpy as np

    from smplora_nb.data import Item

    rng = np.random.default_rng(0)
    def entry():
        audit = {"loss_map_mlp": {"asr": 0.6, "auc": 0.6, "auc_dev": 0.2, "tpr_at_5pct_fpr": 0.1,
                                  "scores_member": rng.random(20).tolist(), "scores_nonmember": rng.random(20).tolist()}}
        return {"audit": audit, "quality": {"fid": 1.0, "kid": 0.1},
                "samples": rng.integers(0, 255, (3, 16, 16, 3), dtype=np.uint8)}
    entries = {("lora", None, 1): entry(), ("smp_lora", 1.0, 1): entry(), ("smp_lora", 0.1, 1): entry(),
               ("smp_lora", 1.0, 2): entry()}
    members = [Item(c, rng.integers(0, 255, (16, 16, 3), dtype=np.uint8), c, c) for c in "abc"]
    assert widgets.explorer(entries, members, interactive=False) is None
    shown = capsys.readouterr().out
    assert "Markdown object" in shown and shown.count("Image object") == 2    # table, then ROC and samples (PNG)
    box = widgets.explorer(entries, members)
    method, lam, split = box.children[0].children
    assert method.options == (("LoRA", "lora"), ("SMP-LoRA", "smp_lora")) and split.options == (("1", 1),)
    assert lam.options == (("n/a", None),) and lam.disabled                # lam does not apply to plain LoRA
    method.value = "smp_lora"
    assert lam.options == (("0.1", 0.1), ("1.0", 1.0)) and not lam.disabled and split.options == (("1", 1),)
    lam.value = 1.0
    assert split.options == (("1", 1), ("2", 2))
    split.value = 2
