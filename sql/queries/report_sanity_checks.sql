-- Report (faithfulness, when the view exists): everything sanity_checks holds.
SELECT * FROM sanity_checks
