-- Dashboards (Fine-tuning): training curves of the live fine-tuned models.
SELECT e.finetune_id, e.model, e.strategy, e.epoch, e.train_loss, e.val_loss, e.train_acc,
       e.val_acc, e.lr_head, e.seconds
FROM finetune_epochs e
JOIN finetune_runs r USING (finetune_id)
ORDER BY e.model, e.strategy, e.finetune_id, e.epoch
