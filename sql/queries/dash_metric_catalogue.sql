-- Dashboards: metric metadata (label, direction, reference) from the metric catalogue.
SELECT metric, label, direction, reference, parameters, threshold_free, description
FROM metric_catalogue
