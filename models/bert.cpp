// BERT and RoBERTa as Hugging Face transformers computes them (models/bert.h).
#include "models/bert.h"

#include <cmath>
#include <limits>

#include "core/core.h"

namespace attnscope::models {
namespace nn = torch::nn;

namespace {
bool starts_with(const std::string& s, const std::string& prefix) { return s.rfind(prefix, 0) == 0; }
}  // namespace

BertEmbeddingsImpl::BertEmbeddingsImpl(const TransformerConfig& c)
    : pad_id(c.pad_token_id), roberta_positions(c.model_type == "roberta") {
  auto words = nn::EmbeddingOptions(c.vocab_size, c.hidden_size);
  if (c.pad_token_id >= 0) words.padding_idx(c.pad_token_id);
  word_embeddings = register_module("word_embeddings", nn::Embedding(words));
  auto positions = nn::EmbeddingOptions(c.max_position_embeddings, c.hidden_size);
  if (roberta_positions) positions.padding_idx(c.pad_token_id);
  position_embeddings = register_module("position_embeddings", nn::Embedding(positions));
  token_type_embeddings = register_module("token_type_embeddings", nn::Embedding(c.type_vocab_size, c.hidden_size));
  LayerNorm = register_module("LayerNorm", nn::LayerNorm(nn::LayerNormOptions({c.hidden_size}).eps(c.layer_norm_eps)));
  dropout = register_module("dropout", nn::Dropout(c.hidden_dropout_prob));
}

torch::Tensor BertEmbeddingsImpl::forward(const torch::Tensor& input_ids, const torch::Tensor& token_type_ids, Taps* taps) {
  torch::Tensor positions;
  if (roberta_positions) {  // cumulative count of real tokens, offset by the pad id (first real token: pad + 1)
    const auto real = input_ids.ne(pad_id).to(torch::kLong);
    positions = torch::cumsum(real, 1) * real + pad_id;
  } else {
    positions = torch::arange(input_ids.size(1), input_ids.options()).unsqueeze(0).expand_as(input_ids);
  }
  const auto types = token_type_ids.defined() ? token_type_ids : torch::zeros_like(input_ids);
  const auto words = word_embeddings(input_ids), typed = token_type_embeddings(types), placed = position_embeddings(positions);
  tap(taps, site::kEmbedWord, 0, words);
  tap(taps, site::kEmbedPosition, 0, placed);
  tap(taps, site::kEmbedType, 0, typed);
  return dropout(LayerNorm(words + typed + placed));
}

BertSelfAttentionImpl::BertSelfAttentionImpl(const TransformerConfig& c)
    : heads(c.num_attention_heads), head_dim(c.hidden_size / c.num_attention_heads) {
  query = register_module("query", nn::Linear(c.hidden_size, c.hidden_size));
  key = register_module("key", nn::Linear(c.hidden_size, c.hidden_size));
  value = register_module("value", nn::Linear(c.hidden_size, c.hidden_size));
  dropout = register_module("dropout", nn::Dropout(c.attention_probs_dropout_prob));
}

torch::Tensor BertSelfAttentionImpl::forward(const torch::Tensor& x, const torch::Tensor& mask, int64_t layer, Taps* taps) {
  const int64_t B = x.size(0), T = x.size(1);
  auto split = [&](const torch::Tensor& t) { return t.view({B, T, heads, head_dim}).transpose(1, 2); };  // [B,H,T,d]
  const auto q = split(query(x)), k = split(key(x)), v = split(value(x));
  tap(taps, site::kAttnQ, layer, q);
  tap(taps, site::kAttnK, layer, k);
  tap(taps, site::kAttnV, layer, v);
  auto scores = torch::matmul(q, k.transpose(-1, -2)) / std::sqrt(static_cast<double>(head_dim)) + mask;  // [B,H,T,T]
  tap(taps, site::kAttnScores, layer, scores);
  auto probs = torch::softmax(scores, -1);
  tap(taps, site::kAttnProbs, layer, probs);
  probs = gate_probs(taps, layer, probs);
  const auto context = gate_heads(taps, layer, torch::matmul(dropout(probs), v));  // [B,H,T,d]
  tap(taps, site::kAttnContext, layer, context);
  return context.transpose(1, 2).reshape({B, T, heads * head_dim});                  // [B,T,D]
}

BertOutputImpl::BertOutputImpl(int64_t in, int64_t out, const TransformerConfig& c) {
  dense = register_module("dense", nn::Linear(in, out));
  LayerNorm = register_module("LayerNorm", nn::LayerNorm(nn::LayerNormOptions({out}).eps(c.layer_norm_eps)));
  dropout = register_module("dropout", nn::Dropout(c.hidden_dropout_prob));
}

torch::Tensor BertOutputImpl::forward(const torch::Tensor& x, const torch::Tensor& residual) {
  return LayerNorm(dropout(dense(x)) + residual);
}

BertAttentionImpl::BertAttentionImpl(const TransformerConfig& c) {
  self = register_module("self", BertSelfAttention(c));
  output = register_module("output", BertOutput(c.hidden_size, c.hidden_size, c));
}

BertIntermediateImpl::BertIntermediateImpl(const TransformerConfig& c) {
  dense = register_module("dense", nn::Linear(c.hidden_size, c.intermediate_size));
}

BertLayerImpl::BertLayerImpl(const TransformerConfig& c) : act(c.hidden_act) {
  attention = register_module("attention", BertAttention(c));
  intermediate = register_module("intermediate", BertIntermediate(c));
  output = register_module("output", BertOutput(c.intermediate_size, c.hidden_size, c));
}

torch::Tensor BertLayerImpl::forward(const torch::Tensor& x, const torch::Tensor& mask, int64_t layer, Taps* taps) {
  const auto attended = attention->output(attention->self(x, mask, layer, taps), x);
  const auto ffn = output->dense(activation(act, intermediate->dense(attended)));
  tap(taps, site::kFfnOut, layer, ffn);
  return output->LayerNorm(output->dropout(ffn) + attended);  // BertOutput's add & norm
}

BertEncoderImpl::BertEncoderImpl(const TransformerConfig& c) {
  layer = register_module("layer", nn::ModuleList());
  for (int64_t i = 0; i < c.num_hidden_layers; ++i) layer->push_back(BertLayer(c));
}

BertPoolerImpl::BertPoolerImpl(const TransformerConfig& c) {
  dense = register_module("dense", nn::Linear(c.hidden_size, c.hidden_size));
}

torch::Tensor BertPoolerImpl::forward(const torch::Tensor& hidden_states) {
  return torch::tanh(dense(hidden_states.select(1, 0)));
}

BertModelImpl::BertModelImpl(const TransformerConfig& c, bool with_pooler) : TransformerImpl(c) {
  embeddings = register_module("embeddings", BertEmbeddings(c));
  encoder = register_module("encoder", BertEncoder(c));
  if (with_pooler) pooler = register_module("pooler", BertPooler(c));
}

std::string BertModelImpl::architecture() const {
  return config_.model_type == "roberta" ? kRobertaEncoder : kBertEncoder;
}

std::string BertModelImpl::body_prefix() const { return config_.model_type == "roberta" ? "roberta." : "bert."; }

bool BertModelImpl::is_optional_tensor(const std::string& name) const {
  return name == "embeddings.position_ids" || (!pooler && starts_with(name, "pooler."));
}

torch::Tensor BertModelImpl::hidden(const torch::Tensor& input_ids, const torch::Tensor& attention_mask, Taps* taps,
                                    const torch::Tensor& token_type_ids) {
  auto h = embeddings(input_ids, token_type_ids, taps);
  tap(taps, site::kEmbedOut, 0, h);
  h = add_embed_delta(taps, h);
  // additive mask as HF: 0 for tokens, the dtype's lowest value for padding keys
  const auto mask = (1.0 - attention_mask.to(h.scalar_type())).view({h.size(0), 1, 1, h.size(1)}) *
                    std::numeric_limits<float>::lowest();
  int64_t i = 0;
  for (const auto& module : *encoder->layer) {
    h = module->as<BertLayer>()->forward(h, mask, i, taps);
    tap(taps, site::kBlockOut, i, h);
    ++i;
  }
  return h;
}

std::vector<std::shared_ptr<torch::nn::Module>> BertModelImpl::blocks() {
  std::vector<std::shared_ptr<torch::nn::Module>> out{embeddings.ptr()};
  for (const auto& l : *encoder->layer) out.push_back(l);
  return out;
}

bool BertHeadModelImpl::is_head_tensor(const std::string& name) const {
  if (config_.model_type == "roberta") return starts_with(name, "classifier.") || starts_with(name, "lm_head.");
  return starts_with(name, "classifier.") || starts_with(name, "cls.") || starts_with(name, "bert.pooler.");
}

bool BertHeadModelImpl::is_optional_tensor(const std::string& name) const {
  const std::string p = body_prefix();
  if (starts_with(name, p) && body->is_optional_tensor(name.substr(p.size()))) return true;
  return name == "lm_head.decoder.weight" || name == "lm_head.decoder.bias" || name == "cls.predictions.decoder.weight" ||
         name == "cls.predictions.decoder.bias";
}

RobertaClassificationHeadImpl::RobertaClassificationHeadImpl(const TransformerConfig& c) {
  dense = register_module("dense", nn::Linear(c.hidden_size, c.hidden_size));
  out_proj = register_module("out_proj", nn::Linear(c.hidden_size, c.num_labels));
  dropout = register_module("dropout", nn::Dropout(c.classifier_dropout >= 0 ? c.classifier_dropout : c.hidden_dropout_prob));
}

torch::Tensor RobertaClassificationHeadImpl::forward(const torch::Tensor& features, Taps* taps) {
  const auto first = features.select(1, 0);  // <s>
  tap(taps, site::kPooled, 0, first);
  return out_proj(dropout(torch::tanh(dense(dropout(first)))));
}

RobertaForSequenceClassificationImpl::RobertaForSequenceClassificationImpl(const TransformerConfig& c) : BertHeadModelImpl(c) {
  body = register_module("roberta", BertModel(c));
  classifier = register_module("classifier", RobertaClassificationHead(c));
}

torch::Tensor RobertaForSequenceClassificationImpl::forward(const torch::Tensor& input_ids, const torch::Tensor& attention_mask,
                                                            Taps* taps, const torch::Tensor& token_type_ids) {
  return classifier(hidden(input_ids, attention_mask, taps, token_type_ids), taps);
}

RobertaLMHeadImpl::RobertaLMHeadImpl(const TransformerConfig& c) {
  dense = register_module("dense", nn::Linear(c.hidden_size, c.hidden_size));
  layer_norm = register_module("layer_norm", nn::LayerNorm(nn::LayerNormOptions({c.hidden_size}).eps(c.layer_norm_eps)));
  bias = register_parameter("bias", torch::zeros({c.vocab_size}));
}

torch::Tensor RobertaLMHeadImpl::forward(const torch::Tensor& features, const torch::Tensor& word_embeddings) {
  return torch::nn::functional::linear(layer_norm(torch::gelu(dense(features))), word_embeddings, bias);
}

RobertaForMaskedLMImpl::RobertaForMaskedLMImpl(const TransformerConfig& c) : BertHeadModelImpl(c) {
  body = register_module("roberta", BertModel(c));
  lm_head = register_module("lm_head", RobertaLMHead(c));
}

torch::Tensor RobertaForMaskedLMImpl::lm_logits(const torch::Tensor& hidden_states) {
  return lm_head(hidden_states, body->embeddings->word_embeddings->weight);
}

BertForSequenceClassificationImpl::BertForSequenceClassificationImpl(const TransformerConfig& c) : BertHeadModelImpl(c) {
  body = register_module("bert", BertModel(c, true));
  dropout = register_module("dropout", nn::Dropout(c.classifier_dropout >= 0 ? c.classifier_dropout : c.hidden_dropout_prob));
  classifier = register_module("classifier", nn::Linear(c.hidden_size, c.num_labels));
}

torch::Tensor BertForSequenceClassificationImpl::forward(const torch::Tensor& input_ids, const torch::Tensor& attention_mask,
                                                         Taps* taps, const torch::Tensor& token_type_ids) {
  const auto h = hidden(input_ids, attention_mask, taps, token_type_ids);
  tap(taps, site::kPooled, 0, h.select(1, 0));  // [CLS], as RoBERTa's <s>: the readout before the head
  return classifier(dropout(body->pooler(h)));
}

BertPredictionHeadTransformImpl::BertPredictionHeadTransformImpl(const TransformerConfig& c) {
  dense = register_module("dense", nn::Linear(c.hidden_size, c.hidden_size));
  LayerNorm = register_module("LayerNorm", nn::LayerNorm(nn::LayerNormOptions({c.hidden_size}).eps(c.layer_norm_eps)));
}

BertLMPredictionHeadImpl::BertLMPredictionHeadImpl(const TransformerConfig& c) {
  transform = register_module("transform", BertPredictionHeadTransform(c));
  bias = register_parameter("bias", torch::zeros({c.vocab_size}));
}

BertOnlyMLMHeadImpl::BertOnlyMLMHeadImpl(const TransformerConfig& c) {
  predictions = register_module("predictions", BertLMPredictionHead(c));
}

BertForMaskedLMImpl::BertForMaskedLMImpl(const TransformerConfig& c) : BertHeadModelImpl(c) {
  body = register_module("bert", BertModel(c));
  cls = register_module("cls", BertOnlyMLMHead(c));
}

torch::Tensor BertForMaskedLMImpl::lm_logits(const torch::Tensor& hidden_states) {
  auto& p = cls->predictions;
  const auto t = p->transform->LayerNorm(activation(config_.hidden_act, p->transform->dense(hidden_states)));
  return torch::nn::functional::linear(t, body->embeddings->word_embeddings->weight, p->bias);
}

void init_like_transformers(torch::nn::Module& module, double range) {
  torch::NoGradGuard no_grad;
  for (auto& m : module.modules(/*include_self=*/true)) {
    if (auto* lin = m->as<nn::Linear>()) {
      lin->weight.normal_(0, range);
      if (lin->bias.defined()) lin->bias.zero_();
    } else if (auto* emb = m->as<nn::Embedding>()) {
      emb->weight.normal_(0, range);
      const auto pad = emb->options.padding_idx();
      if (pad && *pad >= 0) emb->weight[*pad].zero_();
    } else if (auto* ln = m->as<nn::LayerNorm>()) {
      ln->weight.fill_(1);
      ln->bias.zero_();
    }
  }
}

}  // namespace attnscope::models
