"""The weight store's tool, `semseg-weights` (semseg.store.cli): the ImageNet backbones fetched at image build time
from the first source that answers with the right file (GluonCV's model store, timm's copies on the Hugging Face
Hub, a URL of the builder's), or imported from a file the user brings, checked, and written as the GluonCV
parameter file both engines load, with a manifest of where each came from. Never run at train time."""
