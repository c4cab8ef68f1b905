-- Dashboards: the method each model is ranked by.
SELECT model, default_method, random_weights FROM model_defaults ORDER BY model
