"""Iris (seed 000): 150 flowers, 4 measurements, 3 species; bundled with scikit-learn."""

from __future__ import annotations

import torch
from sklearn.datasets import load_iris
from sklearn.model_selection import train_test_split
from sklearn.preprocessing import MinMaxScaler

from litnets.data.base import InMemoryDataModule, Split


class IrisDataModule(InMemoryDataModule):
    """The tutorial's split: ``train_test_split(test_size=0.2, random_state=42)``, unstratified.

    Validation comes out of the 120 training rows; the MinMax scaler is fitted on the
    remaining training rows only, so neither validation nor test leaks into it.
    """

    def __init__(
        self,
        test_size: float = 0.2,
        split_random_state: int = 42,
        scale: bool = True,
        **kwargs,
    ) -> None:
        super().__init__(**kwargs)
        self.test_size = test_size
        self.split_random_state = split_random_state
        self.scale = scale
        self.scaler: MinMaxScaler | None = None
        self._class_names = [str(name) for name in load_iris().target_names]

    @property
    def input_shape(self) -> tuple[int, ...]:
        return (4,)

    @property
    def num_outputs(self) -> int:
        return 3

    @property
    def class_names(self) -> list[str]:
        return self._class_names

    def load(self) -> dict[str, Split]:
        iris = load_iris()
        x_train, x_test, y_train, y_test = train_test_split(
            iris.data, iris.target, test_size=self.test_size, random_state=self.split_random_state
        )
        return {
            "train": (torch.as_tensor(x_train, dtype=torch.float32), torch.as_tensor(y_train)),
            "test": (torch.as_tensor(x_test, dtype=torch.float32), torch.as_tensor(y_test)),
        }

    def preprocess(self, splits: dict[str, Split]) -> dict[str, Split]:
        if self.scale:
            self.scaler = MinMaxScaler().fit(splits["train"][0].double().numpy())
        return self.encoded(splits)

    def encode(self, raw: torch.Tensor) -> torch.Tensor:
        """Measurements in cm → the MinMax scaling fitted on the training rows."""
        if not self.scale:
            return raw.float()
        if self.scaler is None:
            self.setup()
        return torch.as_tensor(self.scaler.transform(raw.double().numpy()), dtype=torch.float32)
