"""`rerankforge inspect`: a local web page over a collection, an eval report folder and a reranker folder -- the
queries where the reranker wins and loses, one query's two rankings side by side, the training groups with their
likely false negatives, labelling that appends to a labels file `mine` and `train` read, and the training and
eval charts."""
