"""Online serving: the champions' native boosters, online features, SHAP reasons, hot reload, a log."""
