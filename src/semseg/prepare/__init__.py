"""`semseg-prepare`: the user's labels into the algorithm's four File channels (train, train_annotation, validation,
validation_annotation: JPEG images, 8-bit PNG masks of class indices, 255 ignored, paired by name), from the layouts
people have: VOC2012, ADE20K, Cityscapes, COCO (polygons and RLE, through pycocotools), RGB colour masks and plain
folders of index masks. Each layout's rules (semseg.prepare.layouts) remove the traps that train fine and score
nonsense: ADE20K's 0 = "other", Cityscapes' label ids, colour masks read as indices. The work is done by every core
(semseg.prepare.convert) in a temporary folder beside the output, renamed into place only when every file passed;
bad input is named, grouped, and leaves nothing (semseg.prepare.problems)."""
