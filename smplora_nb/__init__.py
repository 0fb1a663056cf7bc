"""smplora_nb: notebooks and helpers for SMP-LoRA (Luo et al., AAAI 2025, arXiv 2402.11989).

Flat topic modules, one concept each; notebooks import them by name, e.g.
``from smplora_nb import config, data, models, viz``.

    config   profiles (tiny, paper) and per-stage dataclasses, validated
    paths    outputs/<notebook-stem>/, atomic writes, cache keys
    data     datasets (digits, folder, hub), the paper's member / non-member splits, manifests
    models   the tiny Stable-Diffusion-architecture model and the one loader for every source
    lora     LoRA adapters (peft), saved and loaded in the diffusers format
    losses   the per-element adaptation loss map, the MI gain, the MP-LoRA and SMP-LoRA objectives
    train    the one training loop (accelerate) for lora, mp_lora, smp_lora; checkpoints, resume, train_many
    defense  MP-LoRA and SMP-LoRA: the proxy attack trained inside the loop, its feature, the objective
    diagnostics  gradient norm and scale, Hessian top eigenvalue, per-run statistics (Fig. 1b, 2, Table 3)
    attack   membership-inference attacks (the paper's loss-map MLP, Loss@t)
    metrics  membership and image-quality metrics
    evaluate auditing one trained run (attacks on D_te, image quality), cached beside the run
    viz      every figure
    runner   papermill execution of the notebook series (``python -m smplora_nb notebooks``)
"""
__version__ = "0.1.0"
