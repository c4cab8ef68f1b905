-- Jobs (fine-tuned variants): the methods that already have frozen maps for $model.
SELECT DISTINCT method FROM _raw_attention_maps WHERE model = $model AND variant = 'frozen'
