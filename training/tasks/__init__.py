"""Training tasks, each a torchrun-compatible `main(argv)` on the shared trainer (`training/trainer/`):
`train` (MeDSLIP pretraining, medslip-train, with its objective in `losses`), `finetune_cls`
(medslip-finetune-cls) and `finetune_seg` (medslip-finetune-seg)."""
