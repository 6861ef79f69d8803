#!/usr/bin/env bash
# the release command of hsanet-broad-v3 (add --resume to continue)
exec hsafeat pretrain --out weights/hsanet-broad-v3 \
  --corpus ../shared/data/pretrain/broad_corpus.tsv.gz \
  --corpus-credit "broad_corpus.tsv.gz (sha256 6ead82c6...): ChEMBL (CC BY-SA 3.0; via keiserlab/e3fp-paper, greglandrum/rdkit_blog, rdkit/benchmarking_platform, molML/s4-for-de-novo-drug-design, UnixJunkie/FASMIFRA, gmattedi/SmilesTransformer, deepchem/deepchem, MolecularAI/ReinventCommunity), ZINC (ZINC250k via insilicomedicine/DD-VAE; ZINC natural products via rdkit/rdkit), a PubChem sample (via rdkit/rdkit) and TCM compounds (via UnixJunkie/FASMIFRA); evaluation molecules removed; per-source licences in the corpus README" \
  --workdir ../pretrain-work/broad-v3 --n-molecules 120000 \
  --steps-a 3000 --steps-b 600 --steps-c 1500 --batching size --batch-size 128 --lr 0.001 --lr-c 0.0003 --backbone-lr-scale 0.3 \
  --w-contrast 0.0 --atom-masking attributes --heads-on pooled --targets v2 --d-model 128 --d-out 128 \
  --scaffold-router --no-size-embedding --vocab-size 2048 --seed 0 --readout pooled_mlp --readout-hidden 512 \
  --readout-epochs 30 --threads 1 --recommended-column pooled "$@"
