-- Jobs (fine-tuned variants): the committed fine-tuning run $finetune_id.
SELECT finetune_id, model, strategy, checkpoint, split_id
FROM _raw_finetune_models
WHERE finetune_id = $finetune_id
