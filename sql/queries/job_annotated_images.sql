-- Jobs: the annotated benchmark images of the current annotation snapshot.
SELECT image_id, church_qid FROM _raw_ann_images
