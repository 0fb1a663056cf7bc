"""smplora_nb: notebooks and helpers for SMP-LoRA (Luo et al., AAAI 2025, arXiv 2402.11989).

Flat topic modules, one idea each, on floors (a module imports only from floors below it; ``labels`` is the ground
floor); notebooks import them by name, e.g. ``from smplora_nb import config, sets, models, viz``.

    labels   the vocabulary: model, attack, method and set keys and the words a reader sees for them (imports nothing)
    config   per-stage dataclasses, validated; profiles: the named profiles (tiny, paper, colab), split presets, seeds
    paths    outputs/<notebook-stem>/, atomic writes, locks, cache keys
    data     datasets (digits, emoji, folder, hub) as items; digits: the bundled digits and their captions and traits
    emoji    the emoji dataset: its frozen list (emoji.tsv), Twemoji's pictures, groups and captions
    sets     the paper's member / non-member sets (splits), manifests, the disjointness check
    duplicates  exact and near-duplicate images at the resolution the model sees
    tinybase the tiny Stable-Diffusion-architecture model: built and pretrained on the public split
    models   the one loader for every base (tiny, hub, folder, single file), the model's inputs, sampling
    lora     LoRA adapters (peft), saved and loaded in the diffusers format
    losses   the per-element adaptation loss map, the MI gain, the MP-LoRA and SMP-LoRA objectives
    defense  the proxy attack of MP-/SMP-LoRA and its input features (the paper's raw map, log map, calibrated)
    dp       DP-SGD's per-member gradients, clipping, noise and accountant (DP-LoRA)
    state    what a training step reads (State) and what a checkpoint saves of it (state_dict)
    batches  D_tr and proxy batches, and each process's slice of them
    methods  one small object per training method: lora, mp_lora, smp_lora, dp_lora
    train    the training loop (accelerate): batches in, method.step, logs out
    checkpoints  a run's state saved and read in one place
    runs     run keys, the run cache, resume, snapshots, train_many
    diagnostics  gradient norm and scale, Hessian top eigenvalue, per-run statistics (Fig. 1b, 2, Table 3)
    mlp      the loss-map MLP (the paper's attack model h / h'), shared by the attacks and the defenses' proxy
    scores   the scores that query the model their own way (PIA, PIAN, SecMI_stat, SimA) and the threshold fit
    attack   the attack stack: one registry (ATTACKS), one fit-on-D_aux / score-D_te interface, one audit and
             one cached record per (model, attack), the reference attacks that read the public base model
    metrics  membership metrics (scikit-learn); quality: FID/KID, the tiny feature net, the digit classifier
    power, pooled, claims   power at the design's sizes; one interval per model and attack over member splits;
             claims that can fail (leaks / defends / not detected, stability, empirical epsilon) and checks
    evaluate auditing one trained run (every attack asked for, image quality), cached beside the run
    bench    what a notebook opens: config, dataset, member splits, base model, quality extractor (lazy)
    grids    the run grids of the notebooks (methods x seeds, early stops, DP, ablations, member splits)
    study    the analyses: summaries and noise floors, utilities, training statistics, ablations, the split check
    powered  the powered audit: the pooled matrix, the frontier, SMP-LoRA against DP-LoRA, the DP audit
    findings each notebook's claims, computed from its records; records: one record builder per notebook
    schema   what each notebook's metrics.json holds, checked on write and on read
    parallel independent jobs side by side on CPU, sweeps split in shards
    speed    this machine in one number (a tiny U-Net step) and the notebooks' expected minutes
    viz      figures of data and training, save/show; viz_privacy: ROC, attack matrix, frontier, privacy-utility
    tables   the one Markdown writer and every table; widgets: the results explorer
    runner   papermill execution of the notebook series (``python -m smplora_nb notebooks``); report: REPORT.md;
             book: the executed series as a site
"""
__version__ = "0.2.0"
