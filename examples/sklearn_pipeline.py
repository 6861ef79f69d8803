"""Frozen hsafeat embeddings + a scikit-learn head, in one Pipeline.

Run:  python examples/sklearn_pipeline.py
Toy labels (is there an aromatic ring?) keep the example self-contained; swap in your own data."""
import numpy as np
from rdkit import Chem
from rdkit.Chem import rdMolDescriptors
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import cross_val_score
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

from hsafeat import HSAFeaturizer

smiles = [line.split()[0] for line in open("examples/molecules.smi") if line.strip() and not line.startswith("#")]
featurizer = HSAFeaturizer(columns=("fused",), on_invalid="nan")
X, valid = featurizer.fit(smiles).transform_with_mask(smiles)   # rows stay aligned with `smiles`
smiles = [s for s, ok in zip(smiles, valid) if ok]
y = np.array([rdMolDescriptors.CalcNumRings(Chem.MolFromSmiles(s)) > 0 for s in smiles], dtype=int)
print(f"{valid.sum()} valid of {len(valid)}; X: {X[valid].shape}")

# The featurizer also sits inside a Pipeline (it is stateless: the encoder is frozen).
pipe = make_pipeline(HSAFeaturizer(columns=("fused",)), StandardScaler(), LogisticRegression(max_iter=1000))
scores = cross_val_score(pipe, np.array(smiles, dtype=object), y, cv=3)
print("3-fold accuracy:", np.round(scores, 3))
