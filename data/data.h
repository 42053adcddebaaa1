// Public header of attnscope::data: datasets, splits and batching.
#pragma once

#include "data/batching.h"
#include "data/bpe_tokenizer.h"
#include "data/minmax.h"
#include "data/molecule_tokenizer.h"
#include "data/molecules.h"
#include "data/smiles_tokenizer.h"
