#!/usr/bin/env bash
# Lays out deploy/ for compose.yaml: a federation CA and certificates, and for each
# bank a gateway config, a data folder and a token issuer; the dealer's config.
# In a real federation each institution keeps its own key and receives only its
# certificate from the CA's holder; this script does it all on one machine.
set -euo pipefail
cd "$(dirname "$0")"
banks=(bank-a bank-b bank-c)
mpcgate pki init --dir pki
for party in "${banks[@]}" dealer; do mpcgate pki issue "$party" --dir pki; done
for bank in "${banks[@]}"; do
    mkdir -p "$bank/data"
    (cd "$bank" && mpcgate token keygen --kid k1)
    peers=$(for other in "${banks[@]}"; do if [ "$other" != "$bank" ]; then echo "$other = \"$other:7000\""; fi; done)
    cat > "$bank/gateway.toml" <<TOML
party_id = "$bank"
listen = "0.0.0.0:7000"
data_dir = "data"
database = "gateway.db"

[tls]
ca = "/srv/pki/ca.crt"
cert = "/srv/pki/party.crt"
key = "/srv/pki/party.key"

[peers]
$peers

[issuers]
$bank-idp = ["issuer/k1.jwks.json"]

[dealer]
id = "dealer"
address = "dealer:7000"
TOML
done
mkdir -p dealer
cat > dealer/dealer.toml <<TOML
dealer_id = "dealer"
listen = "0.0.0.0:7000"

[tls]
ca = "/srv/pki/ca.crt"
cert = "/srv/pki/party.crt"
key = "/srv/pki/party.key"

[parties]
$(for bank in "${banks[@]}"; do echo "$bank = \"$bank:7000\""; done)
TOML
echo "deploy/ is ready: docker compose -f deploy/compose.yaml up -d"
