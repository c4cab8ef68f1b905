-- Export: the feature ontology as COCO categories (first parent as supercategory).
SELECT label, name, coalesce(parent_names[1], name) AS supercategory, parent_names
FROM feature_types
ORDER BY label
