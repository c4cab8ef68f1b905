-- Jobs (probe): stored features of the annotated images whose first listed style is one
-- of $styles, with that style as the label.
SELECT f.model, f.variant, f.layer, f.kind, f.image_id, f."values", i.primary_style
FROM features f JOIN images i USING (image_id)
WHERE list_contains($styles, i.primary_style)
ORDER BY f.model, f.variant, f.kind, f.layer, f.image_id
