"""What a job leaves for people to look at, the same for every engine, written by the first host: /opt/ml/output/data
(evaluation.json, the pictures) and TensorBoard's event files. Never the job's failure: a file that cannot be
written is a warning. `recorder` is what the job's hooks call; `evaluation`, `pictures` and `board` write."""
