"""Load an hsafeat Parquet file with pyarrow, pandas or polars.

Run:  hsafeat embed examples/molecules.smi -o examples/molecules.parquet
      python examples/load_embeddings.py examples/molecules.parquet
pandas and polars are optional (pip install pandas polars); pyarrow comes with hsafeat."""
import json
import sys

import numpy as np
import pyarrow.parquet as pq

path = sys.argv[1] if len(sys.argv) > 1 else "examples/molecules.parquet"

# pyarrow: one row per input line. Keep every slot with .values (NOT .flatten(), which skips the
# null rows of invalid SMILES and misaligns ids); those null rows become NaN, which needs a copy.
table = pq.read_table(path, columns=["id", "valid", "fused"])
col = table.column("fused").combine_chunks()
X_all = col.values.to_numpy(zero_copy_only=False).reshape(-1, col.type.list_size)  # NaN rows where invalid
valid = table.column("valid").to_numpy(zero_copy_only=False)
assert np.isnan(X_all[~valid]).all() and not np.isnan(X_all[valid]).any()
print("pyarrow:", X_all.shape, "valid rows:", int(valid.sum()))

# metadata: weights name and sha256, dims, versions, input sha256, row counts
meta = json.loads(pq.read_schema(path).metadata[b"hsafeat"])
print("weights:", meta["weights"]["name"], meta["weights"]["sha256"][:12], "rows:", meta["rows"])

# pandas: null (None) for invalid rows; stack only the valid ones
try:
    import pandas as pd

    df = pd.read_parquet(path, columns=["id", "valid", "fused"])
    X = np.stack(df.loc[df.valid, "fused"].to_numpy())
    print("pandas:", X.shape, X.dtype)
except ImportError:
    print("pandas not installed; skipped")

# polars: Array(Float32, D) -> a 2-D numpy array
try:
    import polars as pl

    X = pl.read_parquet(path).filter(pl.col("valid"))["fused"].to_numpy()
    print("polars:", X.shape, X.dtype)
except ImportError:
    print("polars not installed; skipped")
