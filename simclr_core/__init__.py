"""simclr_core: the building blocks of the SimCLR Workbook (Chen et al. 2020, arXiv:2002.05709).

Layers, imported one way only (tests/test_layers.py checks it):

    checks, precision        validation at public boundaries; device / autocast / memory-format policy
    nn/                      NT-Xent, encoders f and head g, speed-only layers, queue / momentum encoder / memory bank
    data/                    datasets and their facts, augmentations (per image and batched), Figure 5's ops, synthetic data
    eval/                    frozen features, kNN and linear probe, embedding diagnostics
    teaching/                the exercise sheet's numbers, each student's problem-set numbers, the explorers
    train/                   recipe and presets, schedule, step and objectives, the one Trainer, callbacks,
                             checkpoints, time budget, torchrun, supervised baselines, run folders
    experiments/, cli.py     the experiments behind notebooks 06-09; the ``simclr`` command
"""

__version__ = "0.1.0"
