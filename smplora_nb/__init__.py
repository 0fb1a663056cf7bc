"""smplora_nb: notebooks and helpers for SMP-LoRA (Luo et al., AAAI 2025, arXiv 2402.11989).

Flat topic modules, one concept each; notebooks import them by name, e.g.
``from smplora_nb import config, sets, models, viz``.

    config   profiles (tiny, paper, colab) and per-stage dataclasses, validated
    paths    outputs/<notebook-stem>/, atomic writes, cache keys
    data     datasets (digits, folder, hub) and captions
    sets     the paper's member / non-member sets (splits), manifests, the disjointness check
    tinybase the tiny Stable-Diffusion-architecture model: built and pretrained on the public split
    models   the one loader for every base (tiny, hub, folder, single file), the model's inputs, sampling
    lora     LoRA adapters (peft), saved and loaded in the diffusers format
    losses   the per-element adaptation loss map, the MI gain, the MP-LoRA and SMP-LoRA objectives
    defense  the proxy attack of MP-/SMP-LoRA and its input features (the paper's raw map, log map, calibrated)
    dp       DP-SGD's per-member gradients, clipping, noise and accountant (DP-LoRA)
    methods  one small object per training method: lora, mp_lora, smp_lora, dp_lora
    batches  D_tr and proxy batches, and each process's slice of them
    train    the training loop (accelerate): batches in, method.step, logs out
    runs     run keys, the run cache, checkpoints, resume, snapshots, train_many
    diagnostics  gradient norm and scale, Hessian top eigenvalue, per-run statistics (Fig. 1b, 2, Table 3)
    attack   membership-inference attacks (the paper's loss-map MLP, Loss@t); scores: PIA, PIAN, SecMI, SimA
    metrics  membership and image-quality metrics
    evaluate auditing one trained run (attacks on D_te, image quality), cached beside the run
    parallel independent jobs side by side on CPU, sweeps split in shards
    viz      every figure; tables: the Markdown tables; widgets: the results explorer
    runner   papermill execution of the notebook series (``python -m smplora_nb notebooks``)
"""
__version__ = "0.1.0"
