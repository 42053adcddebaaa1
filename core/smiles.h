// SMILES tokens at the atom level: the pattern of the Molecular Transformer and DeepChem's
// SmilesTokenizer, with character spans. Plain C++ (no LibTorch, no RDKit), so the tokenizers
// (data/) and the molecule figures (viz/) share one definition.
#pragma once

#include <cstdint>
#include <string>
#include <utility>
#include <vector>

namespace attnscope {

using SmilesSpan = std::pair<int64_t, int64_t>;  // [begin, end) character offsets

// Splits a SMILES into tokens; `spans` (optional) receives each token's characters. Joining the
// tokens gives the input back. UsageError naming the position of a character no token matches.
std::vector<std::string> smiles_split(const std::string& smiles, std::vector<SmilesSpan>* spans = nullptr);

// Whether a token of smiles_split is an atom (bracket atom, organic subset, aromatic, '*'), in the
// order RDKit numbers the atoms of the parsed SMILES.
bool smiles_token_is_atom(const std::string& token);

}  // namespace attnscope
