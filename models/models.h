// Public header of attnscope::models: tap points and the models that call them.
#pragma once

#include "models/minmax.h"
#include "models/minmax_fast.h"
#include "models/roberta.h"
#include "models/safetensors.h"
#include "models/torch_pickle.h"
#include "models/taps.h"
