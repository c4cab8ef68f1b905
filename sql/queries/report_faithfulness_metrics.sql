-- Report (faithfulness, when the view exists): everything faithfulness_metrics holds.
SELECT * FROM faithfulness_metrics
