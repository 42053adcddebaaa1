// Public header of attnscope::data: datasets, splits, batching and the tokenizers (byte-level BPE
// for RoBERTa/ChemBERTa and GPT-2, WordPiece for BERT, atom-level SMILES; load_tokenizer()).
#pragma once

#include "data/batching.h"
#include "data/bpe_tokenizer.h"
#include "data/minmax.h"
#include "data/molecules.h"
#include "data/smiles_tokenizer.h"
#include "data/tokenizer.h"
#include "data/wordpiece_tokenizer.h"
