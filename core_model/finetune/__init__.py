"""Fine-tuning Endo-FM task heads (and optionally the backbone) on a training manifest.

Layout (read in this order):

* ``metrics``   - the paper's metrics and the per-lesion ones (numpy only)
* ``schedules`` - per-iteration cosine/warm-up schedules, layer-wise learning-rate decay parameter groups
* ``augment``   - clip augmentation that keeps masks and boxes consistent with the frames
* ``presets``   - recipes: defaults per task and the paper's PolypDiag / CVC-12k / KUMC protocols
* ``data``      - datasets reading the training manifest (split by video)
* ``machine``   - fitting batch size / bf16 / gradient checkpointing to the device, OOM retry
* ``lora``      - optional parameter-efficient mode (LoRA on the attention projections)
* ``engine``    - losses, ``train_one_epoch``, ``evaluate``
* ``run``       - ``finetune(config)``: the recipe, checkpoints, resume, progress events, early stopping
* ``cli`` / ``evaluate_cli`` - ``endofm finetune`` / ``endofm evaluate``

Importing this package imports nothing heavy; import the sub-modules you need.
"""
