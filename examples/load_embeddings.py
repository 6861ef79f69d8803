"""Load an hsafeat Parquet file with pandas, polars or pyarrow.

Run:  hsafeat embed examples/molecules.smi -o examples/molecules.parquet
      python examples/load_embeddings.py examples/molecules.parquet"""
import json
import sys

import numpy as np
import pyarrow.parquet as pq

path = sys.argv[1] if len(sys.argv) > 1 else "examples/molecules.parquet"

# pyarrow: keep every slot with .values (NOT .flatten(), which skips the null rows of invalid SMILES)
table = pq.read_table(path, columns=["id", "valid", "fused"])
col = table.column("fused").combine_chunks()
X_all = col.values.to_numpy().reshape(-1, col.type.list_size)        # one row per input line
valid = table.column("valid").to_numpy(zero_copy_only=False)
print("pyarrow:", X_all.shape, "valid rows:", int(valid.sum()))

# metadata: weights name and sha256, dims, versions, input sha256, row counts
meta = json.loads(pq.read_schema(path).metadata[b"hsafeat"])
print("weights:", meta["weights"]["name"], meta["weights"]["sha256"][:12], "rows:", meta["rows"])

# pandas: null (None) for invalid rows; stack only the valid ones
import pandas as pd  # noqa: E402

df = pd.read_parquet(path, columns=["id", "valid", "fused"])
X = np.stack(df.loc[df.valid, "fused"].to_numpy())
print("pandas:", X.shape, X.dtype)

# polars (optional): Array(Float32, D) -> a 2-D numpy array
try:
    import polars as pl

    X = pl.read_parquet(path).filter(pl.col("valid"))["fused"].to_numpy()
    print("polars:", X.shape)
except ImportError:
    print("polars not installed; skipped")
