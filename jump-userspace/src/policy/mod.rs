//! YAML policy directory → validated model, with file:line:col for every error.
