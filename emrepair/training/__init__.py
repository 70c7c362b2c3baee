"""emrepair.training: self-supervised training of interpolation models on the user's own stacks.

``train(TrainConfig(inputs=["stack.h5"], output="mine.pt", model="flowunet", steps=1000))`` draws
(a, b, target at t) triplets from good sections, optimises, validates against linear on held-out
sections and keeps the best checkpoint (loadable with ``emrepair.models.load_model(path)``).
"""

from emrepair.training.loop import TrainConfig, TrainResult, train
from emrepair.training.state import curves_path, state_path

__all__ = ["TrainConfig", "TrainResult", "train", "curves_path", "state_path"]
