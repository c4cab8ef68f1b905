-- Dashboards (Fine-tuning): every fine-tuned model with its split sizes and best epoch.
SELECT finetune_id, model, strategy, split_id, best_epoch, best_val_acc, n_trainable,
       n_params, trainable_share, n_train, n_val, n_held_out, checkpoint, status,
       started_at, seconds, device
FROM finetune_runs
ORDER BY model, strategy, started_at
