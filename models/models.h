// Public header of attnscope::models: tap points and the models that call them; model files
// (Hugging Face directories, checkpoints, safetensors, torch pickles); the model registry and
// the one loader. Other folders include this header only.
#pragma once

#include "models/bert.h"
#include "models/checkpoint.h"
#include "models/config.h"
#include "models/gpt2.h"
#include "models/hf_dir.h"
#include "models/minmax.h"
#include "models/minmax_fast.h"
#include "models/minmax_kernel.h"
#include "models/registry.h"
#include "models/safetensors.h"
#include "models/state_dict.h"
#include "models/torch_pickle.h"
#include "models/taps.h"
#include "models/transformer.h"
