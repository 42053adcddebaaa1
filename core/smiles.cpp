// SMILES tokens (core/smiles.h).
#include "core/smiles.h"

#include "core/error.h"

namespace attnscope {

namespace {

// Length of the SMILES token at s[i], 0 if none starts there. The pattern of Schwaller et al.
// (Molecular Transformer), alternatives tried in this order as the regular expression would:
//   \[[^\]]+\] | Br? | Cl? | N|O|S|P|F|I|b|c|n|o|s|p|\(|\)|\.|=|#|-|\+|\\|\/|:|~|@|\?|>|\*|\$ | %[0-9]{2} | [0-9]
// DeepChem's SmilesTokenizer uses the same, but an old version of it lost '#' (triple bonds): it is
// here. Hand-written because std::regex (libstdc++) recurses once per character of a bracket atom
// and overflows the stack on a long one (a ~40 KB "[CCC...]" crashed it).
size_t smiles_token_at(const std::string& s, size_t i) {
  const size_t rest = s.size() - i;
  auto digit = [&](size_t k) { return k < s.size() && s[k] >= '0' && s[k] <= '9'; };
  switch (s[i]) {
    case '[': {  // one or more characters other than ']', then ']'
      const size_t close = s.find(']', i + 1);
      return close == std::string::npos || close == i + 1 ? 0 : close - i + 1;
    }
    case 'B': return rest > 1 && s[i + 1] == 'r' ? 2 : 1;
    case 'C': return rest > 1 && s[i + 1] == 'l' ? 2 : 1;
    case 'N': case 'O': case 'S': case 'P': case 'F': case 'I':
    case 'b': case 'c': case 'n': case 'o': case 's': case 'p':
    case '(': case ')': case '.': case '=': case '#': case '-': case '+': case '\\': case '/':
    case ':': case '~': case '@': case '?': case '>': case '*': case '$':
      return 1;
    case '%': return digit(i + 1) && digit(i + 2) ? 3 : 0;
    default: return digit(i) ? 1 : 0;
  }
}

}  // namespace

std::vector<std::string> smiles_split(const std::string& smiles, std::vector<SmilesSpan>* spans) {
  std::vector<std::string> out;
  for (size_t pos = 0; pos < smiles.size();) {
    const size_t n = smiles_token_at(smiles, pos);
    if (n == 0) {
      throw UsageError("SMILES '" + smiles + "': character " + std::to_string(pos + 1) + " ('" +
                       smiles.substr(pos, 1) + "') starts no SMILES token");
    }
    out.push_back(smiles.substr(pos, n));
    if (spans) spans->emplace_back(static_cast<int64_t>(pos), static_cast<int64_t>(pos + n));
    pos += n;
  }
  return out;
}

bool smiles_token_is_atom(const std::string& t) {
  if (t.empty()) return false;
  if (t[0] == '[') return true;
  if (t == "Br" || t == "Cl") return true;
  return t.size() == 1 && std::string("BCNOSPFIbcnosp*").find(t[0]) != std::string::npos;
}

}  // namespace attnscope
