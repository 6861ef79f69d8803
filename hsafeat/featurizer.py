"""HSAFeaturizer: the library entry point, a scikit-learn transformer over SMILES strings.

    >>> from hsafeat import HSAFeaturizer
    >>> X = HSAFeaturizer().fit_transform(["CCO", "c1ccccc1"])   # the weights' recommended column
    >>> X = HSAFeaturizer(columns="fused").fit_transform(["CCO", "c1ccccc1"])   # (2, 256) float32

Invalid SMILES never shift rows: on_invalid="raise" (default) stops with the offending indices,
on_invalid="nan" returns NaN rows in place (drop them with the mask from transform_with_mask).
device="auto" (default) runs on the GPU when torch sees one, else on the CPU (byte-identical to
device="cpu"). desc_units="real" gives the desc_pred column in RDKit's units (hsafeat.engine)."""
from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

import numpy as np
from sklearn.base import BaseEstimator, TransformerMixin

ON_INVALID = ("raise", "nan")


class InvalidSmilesError(ValueError):
    pass


class HSAFeaturizer(TransformerMixin, BaseEstimator):
    def __init__(
        self, columns: str | Sequence[str] | None = None, weights: str | None = None, device: str = "auto",
        batch_size: int = 128, on_invalid: str = "raise", desc_units: str = "standard",
    ) -> None:
        self.columns = columns
        self.weights = weights
        self.device = device
        self.batch_size = batch_size
        self.on_invalid = on_invalid
        self.desc_units = desc_units

    def __sklearn_tags__(self):  # noqa: ANN204
        tags = super().__sklearn_tags__()
        tags.requires_fit = False  # stateless: the encoder is frozen
        tags.input_tags.string = True
        tags.input_tags.two_d_array = False
        return tags

    # the loaded encoder is a cache, not a parameter: clone() and pickling start fresh
    def __getstate__(self) -> dict[str, Any]:
        state = self.__dict__.copy()
        state.pop("_embedder", None)
        state.pop("_embedder_key", None)
        return state

    def _get_embedder(self):  # noqa: ANN202
        from hsafeat.engine import Embedder

        key = (self.weights, self.device, self.batch_size, self.desc_units)
        if getattr(self, "_embedder_key", None) != key:
            self._embedder = Embedder(self.weights, device=self.device, batch_size=self.batch_size,
                                      desc_units=self.desc_units)
            self._embedder_key = key
        return self._embedder

    def _columns(self) -> list[str]:
        """The columns asked for (one name or several), or (columns=None) the one the weights
        recommend. Checked on every call: set_params can change them after fit."""
        embedder = self._get_embedder()
        if self.columns is None:
            return [embedder.weights.recommended_column]
        columns = [self.columns] if isinstance(self.columns, str) else list(self.columns)
        unknown = [c for c in columns if c not in embedder.dims]
        if unknown:
            raise ValueError(f"unknown columns {unknown}; available: {list(embedder.dims)}")
        return columns

    def fit(self, X: Iterable[str], y: Any = None) -> HSAFeaturizer:
        if self.on_invalid not in ON_INVALID:
            raise ValueError(f"on_invalid must be one of {ON_INVALID}, not {self.on_invalid!r}")
        embedder = self._get_embedder()
        self.weights_sha256_ = embedder.weights.sha256
        self.n_features_out_ = sum(embedder.dims[c] for c in self._columns())
        return self

    def transform_with_mask(self, X: Iterable[str]) -> tuple[np.ndarray, np.ndarray]:
        """(n x D float32 with NaN rows for invalid SMILES, n bool valid mask): invalid SMILES never raise."""
        from hsafeat.workers import share_cores, torch_threads_restored

        smiles = _as_smiles(X)
        columns = self._columns()  # before the work: a wrong name fails at once
        embedder = self._get_embedder()
        with torch_threads_restored():  # the caller keeps their torch thread count
            share_cores(0, embedder.device.type)  # featurized here, so encoded as `hsafeat embed --workers 0` does
            result = embedder.embed(smiles)
        out = np.concatenate([result.embeddings[c] for c in columns], axis=1)
        return out.astype(np.float32, copy=False), result.valid

    def transform(self, X: Iterable[str]) -> np.ndarray:
        if self.on_invalid not in ON_INVALID:
            raise ValueError(f"on_invalid must be one of {ON_INVALID}, not {self.on_invalid!r}")
        smiles = _as_smiles(X)
        out, valid = self.transform_with_mask(smiles)
        if self.on_invalid == "raise" and not valid.all():
            bad = np.flatnonzero(~valid)
            shown = ", ".join(f"{i} ({smiles[i]!r})" for i in bad[:5])
            raise InvalidSmilesError(
                f"{len(bad)} invalid SMILES at rows {shown}{' ...' if len(bad) > 5 else ''}; "
                "use on_invalid='nan' to keep NaN rows in place"
            )
        return out

    def get_feature_names_out(self, input_features: Any = None) -> np.ndarray:
        """The wide layout's column names: fused_000..., desc_pred_MolWt... (hsafeat.output)."""
        from hsafeat.output import wide_column_names

        embedder = self._get_embedder()
        labels = {"desc_pred": embedder.weights.config.readout_descriptors}
        names = [n for c in self._columns() for n in wide_column_names(c, embedder.dims[c], labels.get(c))]
        return np.asarray(names, dtype=object)


def _as_smiles(X: Iterable[str]) -> list[str]:
    """Accept a list/array/Series of SMILES or a single-column 2-D array/DataFrame."""
    if hasattr(X, "to_numpy"):
        X = X.to_numpy()  # type: ignore[union-attr]
    arr = np.asarray(X, dtype=object)
    if arr.ndim == 2:
        if arr.shape[1] != 1:
            raise ValueError(f"expected one column of SMILES, got {arr.shape[1]} columns")
        arr = arr[:, 0]
    if arr.ndim != 1:
        raise ValueError("expected a 1-D sequence of SMILES strings")
    return ["" if s is None else str(s) for s in arr]
