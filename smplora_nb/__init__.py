"""smplora_nb: notebooks and helpers for SMP-LoRA (Luo et al., AAAI 2025, arXiv 2402.11989).

Flat topic modules, one concept each; notebooks import them by name, e.g.
``from smplora_nb import config, sets, models, viz``.

    config   profiles (tiny, paper, colab) and per-stage dataclasses, validated
    paths    outputs/<notebook-stem>/, atomic writes, cache keys
    data     datasets (digits, emoji, folder, hub) and captions (shared or descriptive)
    emoji    the emoji dataset: its frozen list (emoji.tsv), Twemoji's pictures, groups and captions
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
    mlp      the loss-map MLP (the paper's attack model h / h'), shared by the attacks and the defenses' proxy
    scores   the scores that query the model their own way (PIA, PIAN, SecMI_stat, SimA) and the threshold fit
    attack   the attack stack: one registry (ATTACKS), one fit-on-D_aux / score-D_te interface, one audit and
             one cached record per (model, attack), the reference attacks that read the public base model
    metrics  membership and image-quality metrics
    claims   claims that can fail (leaks / defends / not detected, stability, empirical epsilon) and checks
    evaluate auditing one trained run (every attack asked for, image quality), cached beside the run
    grids    the run grids of the notebooks (methods x seeds, early stops, DP, ablations, member splits)
    study    the analyses: summaries and noise floors, attack matrix, spreads, early-stopping frontier, ablations
    findings each notebook's claims, computed from its records
    schema   what each notebook's metrics.json holds, checked on write and on read
    parallel independent jobs side by side on CPU, sweeps split in shards
    viz      every figure and the one label table; tables: the one Markdown writer; widgets: the results explorer
    runner   papermill execution of the notebook series (``python -m smplora_nb notebooks``)
"""
__version__ = "0.2.0"
