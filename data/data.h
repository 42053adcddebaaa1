// Public header of attnscope::data: datasets, splits, batching and the tokenizers.
#pragma once

#include "data/batching.h"
#include "data/bpe_tokenizer.h"
#include "data/minmax.h"
#include "data/molecules.h"
#include "data/smiles_tokenizer.h"
#include "data/tokenizer.h"
