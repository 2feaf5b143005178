{{/*
Names, labels and the paths shared between canary.yml and the Deployment's
mounts. A path canary.yml names is always built here, by the same helper
the mount uses, so the two cannot drift apart.
*/}}

{{- define "canary.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/* The release's full name, at most 63 characters (a DNS label). */}}
{{- define "canary.fullname" -}}
{{- if .Values.fullnameOverride }}
{{- .Values.fullnameOverride | trunc 63 | trimSuffix "-" }}
{{- else }}
{{- $name := default .Chart.Name .Values.nameOverride }}
{{- if contains $name .Release.Name }}
{{- .Release.Name | trunc 63 | trimSuffix "-" }}
{{- else }}
{{- printf "%s-%s" .Release.Name $name | trunc 63 | trimSuffix "-" }}
{{- end }}
{{- end }}
{{- end }}

{{- define "canary.chart" -}}
{{- printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
{{- end }}

{{- define "canary.selectorLabels" -}}
app.kubernetes.io/name: {{ include "canary.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end }}

{{- define "canary.labels" -}}
helm.sh/chart: {{ include "canary.chart" . }}
{{ include "canary.selectorLabels" . }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
app.kubernetes.io/part-of: aurum-canary
{{- with .Values.commonLabels }}
{{ toYaml . }}
{{- end }}
{{- end }}

{{- define "canary.serviceAccountName" -}}
{{- if .Values.serviceAccount.create }}
{{- default (include "canary.fullname" .) .Values.serviceAccount.name }}
{{- else }}
{{- default "default" .Values.serviceAccount.name }}
{{- end }}
{{- end }}

{{- define "canary.image" -}}
{{- $tag := .Values.image.tag | default .Chart.AppVersion }}
{{- if .Values.image.digest }}
{{- printf "%s@%s" .Values.image.repository .Values.image.digest }}
{{- else }}
{{- printf "%s:%s" .Values.image.repository $tag }}
{{- end }}
{{- end }}

{{/* Where the container finds things. */}}
{{- define "canary.configDir" -}}/etc/canary{{- end }}
{{- define "canary.configFile" -}}/etc/canary/canary.yml{{- end }}
{{- define "canary.policiesDir" -}}/etc/canary/policies{{- end }}
{{- define "canary.secretsDir" -}}/etc/canary/secrets{{- end }}
{{- define "canary.dataDir" -}}/var/lib/canary{{- end }}
{{- define "canary.gitRoot" -}}/git{{- end }}
{{- define "canary.gitLink" -}}checkout{{- end }}
{{- define "canary.port" -}}8080{{- end }}

{{/*
The name of the container's and the Service's port, which the probes, the
NetworkPolicy and the ServiceMonitor refer to: https when canary serve
serves HTTPS, so that a mesh or a person reading it does not take it for
plain HTTP.
*/}}
{{- define "canary.portName" -}}
{{- if .Values.tls.enabled }}https{{ else }}http{{ end }}
{{- end }}

{{/* The scheme callers use. */}}
{{- define "canary.scheme" -}}
{{- include "canary.portName" . }}
{{- end }}

{{/*
The ConfigMap of policies mounted at policiesDir, if any: the chart's own
when policies are given (or when nothing else provides policies, so that the
service starts with an empty, valid set), else policiesConfigMap.
*/}}
{{- define "canary.policiesConfigMap" -}}
{{- if .Values.policiesConfigMap }}
{{- .Values.policiesConfigMap }}
{{- else if or .Values.policies (not .Values.gitSync.enabled) }}
{{- printf "%s-policies" (include "canary.fullname" .) }}
{{- end }}
{{- end }}

{{/*
The policy paths of canary.yml. The git-sync path ends in a slash: the link
git-sync publishes is a symlink, and a policy path that is itself a symlink
to a directory is walked as a single file (filepath.WalkDir does not follow
its root), which would load no policy. The slash makes it resolve to the
directory.
*/}}
{{- define "canary.policyPaths" -}}
{{- $paths := list }}
{{- if include "canary.policiesConfigMap" . }}
{{- $paths = append $paths (include "canary.policiesDir" .) }}
{{- end }}
{{- if .Values.gitSync.enabled }}
{{- $sub := trimAll "/" .Values.gitSync.path }}
{{- $dir := printf "%s/%s" (include "canary.gitRoot" .) (include "canary.gitLink" .) }}
{{- if $sub }}
{{- $dir = printf "%s/%s" $dir $sub }}
{{- end }}
{{- $paths = append $paths (printf "%s/" $dir) }}
{{- end }}
{{- toJson $paths }}
{{- end }}

{{/* The route groups of canary serve, each with its own bearer tokens. */}}
{{- define "canary.authGroups" -}}
{{- toJson (list "analysis" "flagger" "alertmanager" "admin" "ui") }}
{{- end }}

{{/*
The groups whose token the chart generates: those with neither an
existingSecret nor open.
*/}}
{{- define "canary.generatedTokenGroups" -}}
{{- $out := list }}
{{- range $group := include "canary.authGroups" . | fromJsonArray }}
{{- $a := get $.Values.auth $group }}
{{- if and (not $a.existingSecret) (not $a.open) }}
{{- $out = append $out $group }}
{{- end }}
{{- end }}
{{- toJson $out }}
{{- end }}

{{/* The groups left open: open, and no existingSecret. */}}
{{- define "canary.openGroups" -}}
{{- $out := list }}
{{- range $group := include "canary.authGroups" . | fromJsonArray }}
{{- $a := get $.Values.auth $group }}
{{- if and $a.open (not $a.existingSecret) }}
{{- $out = append $out $group }}
{{- end }}
{{- end }}
{{- toJson $out }}
{{- end }}

{{/* The Secret of the generated tokens. */}}
{{- define "canary.tokensSecret" -}}
{{- printf "%s-tokens" (include "canary.fullname" .) }}
{{- end }}

{{/*
The generated tokens, group to token, as JSON. A token the Secret already
holds in the cluster is kept (lookup), so that `helm upgrade` does not
change what callers were given; a missing one is a new random token of 40
letters and digits (about 238 bits). Without a cluster (`helm template`,
a client-side dry run) lookup finds nothing, and every render makes new
tokens. The key <group> is the source of truth: a token put there by hand
is kept, and <group>.tokens follows it. Called once per render, by the template that renders both the
Secret and the pod's checksum of it, so the two always agree.
*/}}
{{- define "canary.generateTokens" -}}
{{- $existing := dict }}
{{- with lookup "v1" "Secret" .Release.Namespace (include "canary.tokensSecret" .) }}
{{- $existing = .data | default dict }}
{{- end }}
{{- $tokens := dict }}
{{- range $group := include "canary.generatedTokenGroups" . | fromJsonArray }}
{{- $old := get $existing $group | default "" | b64dec | trim }}
{{- if and $old (not (regexMatch "\\s" $old)) }}
{{- $_ := set $tokens $group $old }}
{{- else }}
{{- $_ := set $tokens $group (randAlphaNum 40) }}
{{- end }}
{{- end }}
{{- toJson $tokens }}
{{- end }}

{{/*
Every Secret the canary container mounts, as a JSON list of
{volume, secret, items: [{key, path}]}; canary.yml names the files at
secretsDir/<volume>/<path>. Volume names are built from list indexes, never
from user-given names, so they are always valid DNS labels.
*/}}
{{- define "canary.secretMounts" -}}
{{- $mounts := list }}
{{- $generated := include "canary.generatedTokenGroups" . | fromJsonArray }}
{{- range $group := include "canary.authGroups" . | fromJsonArray }}
{{- $a := get $.Values.auth $group }}
{{- if $a.existingSecret }}
{{- $mounts = append $mounts (dict "volume" (printf "auth-%s" $group) "secret" $a.existingSecret "items" (list (dict "key" $a.key "path" "tokens"))) }}
{{- else if has $group $generated }}
{{- $mounts = append $mounts (dict "volume" (printf "auth-%s" $group) "secret" (include "canary.tokensSecret" $) "items" (list (dict "key" (printf "%s.tokens" $group) "path" "tokens"))) }}
{{- end }}
{{- end }}
{{- if .Values.tls.enabled }}
{{- if not .Values.tls.secretName }}
{{- fail "tls.enabled needs tls.secretName, a kubernetes.io/tls Secret with tls.crt and tls.key (a cert-manager Certificate's secretName)" }}
{{- end }}
{{- $mounts = append $mounts (dict "volume" "tls" "secret" .Values.tls.secretName "items" (list (dict "key" "tls.crt" "path" "tls.crt") (dict "key" "tls.key" "path" "tls.key"))) }}
{{- end }}
{{- range $i, $p := .Values.prometheus }}
{{- $mounts = concat $mounts (include "canary.httpSecretMounts" (dict "prefix" (printf "prometheus-%d" $i) "client" $p) | fromJsonArray) }}
{{- end }}
{{- range $i, $k := .Values.kafka }}
{{- with $k.sasl }}
{{- if and .passwordSecret .passwordSecret.name }}
{{- $mounts = append $mounts (dict "volume" (printf "kafka-%d-password" $i) "secret" .passwordSecret.name "items" (list (dict "key" (.passwordSecret.key | default "password") "path" "password"))) }}
{{- end }}
{{- end }}
{{- with $k.tls }}
{{- if and .enabled .secret .secret.name }}
{{- $items := list }}
{{- if .secret.ca }}{{ $items = append $items (dict "key" .secret.ca "path" "ca.crt") }}{{ end }}
{{- if .secret.cert }}{{ $items = append $items (dict "key" .secret.cert "path" "tls.crt") }}{{ end }}
{{- if .secret.key }}{{ $items = append $items (dict "key" .secret.key "path" "tls.key") }}{{ end }}
{{- $mounts = append $mounts (dict "volume" (printf "kafka-%d-tls" $i) "secret" .secret.name "items" $items) }}
{{- end }}
{{- end }}
{{- end }}
{{- range $i, $p := .Values.postgres }}
{{- if and (not $p.dsnFromEnv) $p.dsnSecret $p.dsnSecret.name }}
{{- $mounts = append $mounts (dict "volume" (printf "postgres-%d-dsn" $i) "secret" $p.dsnSecret.name "items" (list (dict "key" ($p.dsnSecret.key | default "dsn") "path" "dsn"))) }}
{{- end }}
{{- end }}
{{- range $i, $r := .Values.notifications.routes }}
{{- $prefix := printf "notify-%d" $i }}
{{- $dest := include "canary.notifyDestination" (dict "route" $r "index" $i) }}
{{- $d := get $r $dest }}
{{- if eq $dest "alertmanager" }}
{{- $mounts = concat $mounts (include "canary.httpSecretMounts" (dict "prefix" $prefix "client" $d) | fromJsonArray) }}
{{- else }}
{{- with $d.urlSecret }}
{{- if .name }}
{{- $mounts = append $mounts (dict "volume" (printf "%s-url" $prefix) "secret" .name "items" (list (dict "key" (.key | default "url") "path" "url"))) }}
{{- end }}
{{- end }}
{{- with $d.hmacSecret }}
{{- $mounts = append $mounts (dict "volume" (printf "%s-hmac" $prefix) "secret" .name "items" (list (dict "key" (.key | default "hmac") "path" "hmac"))) }}
{{- end }}
{{- end }}
{{- end }}
{{- toJson $mounts }}
{{- end }}

{{/*
The Secrets of an HTTP client whose credentials are given as Prometheus
sources give them (bearerTokenSecret, basicAuth.passwordSecret, tlsSecret),
as mounts <prefix>-token, <prefix>-password and <prefix>-tls. Prometheus
sources and Alertmanager notification routes share it, so that the two take
credentials alike. Takes dict "prefix" and "client" (the values entry).
*/}}
{{- define "canary.httpSecretMounts" -}}
{{- $mounts := list }}
{{- $prefix := .prefix }}
{{- with .client.bearerTokenSecret }}
{{- if .name }}
{{- $mounts = append $mounts (dict "volume" (printf "%s-token" $prefix) "secret" .name "items" (list (dict "key" (.key | default "token") "path" "token"))) }}
{{- end }}
{{- end }}
{{- with .client.basicAuth }}
{{- if and .passwordSecret .passwordSecret.name }}
{{- $mounts = append $mounts (dict "volume" (printf "%s-password" $prefix) "secret" .passwordSecret.name "items" (list (dict "key" (.passwordSecret.key | default "password") "path" "password"))) }}
{{- end }}
{{- end }}
{{- with .client.tlsSecret }}
{{- if .name }}
{{- $items := list }}
{{- if .ca }}{{ $items = append $items (dict "key" .ca "path" "ca.crt") }}{{ end }}
{{- if .cert }}{{ $items = append $items (dict "key" .cert "path" "tls.crt") }}{{ end }}
{{- if .key }}{{ $items = append $items (dict "key" .key "path" "tls.key") }}{{ end }}
{{- $mounts = append $mounts (dict "volume" (printf "%s-tls" $prefix) "secret" .name "items" $items) }}
{{- end }}
{{- end }}
{{- toJson $mounts }}
{{- end }}

{{/*
The Prometheus http_config of such a client, as JSON: its `http` values
with the files of its mounted Secrets (canary.httpSecretMounts) added as
authorization.credentials_file, basic_auth.password_file and tls_config's
ca_file, cert_file and key_file. Takes dict "root", "prefix", "client" and
"mounts" (the container's Secret mounts by volume).
*/}}
{{- define "canary.httpClientConfig" -}}
{{- $root := .root }}
{{- $mounts := .mounts }}
{{- $http := deepCopy (.client.http | default dict) }}
{{- $v := printf "%s-token" .prefix }}
{{- if hasKey $mounts $v }}
{{- $_ := set $http "authorization" (dict "type" "Bearer" "credentials_file" (include "canary.secretFile" (dict "root" $root "volume" $v "path" "token"))) }}
{{- end }}
{{- $prefix := .prefix }}
{{- with .client.basicAuth }}
{{- if .username }}
{{- $ba := dict "username" .username }}
{{- $v := printf "%s-password" $prefix }}
{{- if hasKey $mounts $v }}
{{- $_ := set $ba "password_file" (include "canary.secretFile" (dict "root" $root "volume" $v "path" "password")) }}
{{- end }}
{{- $_ := set $http "basic_auth" $ba }}
{{- end }}
{{- end }}
{{- $v := printf "%s-tls" .prefix }}
{{- if hasKey $mounts $v }}
{{- $tls := deepCopy ($http.tls_config | default dict) }}
{{- range (get $mounts $v).items }}
{{- $field := get (dict "ca.crt" "ca_file" "tls.crt" "cert_file" "tls.key" "key_file") .path }}
{{- $_ := set $tls $field (include "canary.secretFile" (dict "root" $root "volume" $v "path" .path)) }}
{{- end }}
{{- $_ := set $http "tls_config" $tls }}
{{- end }}
{{- toJson $http }}
{{- end }}

{{/*
The one destination of notifications.routes[index]: alertmanager, slack,
teams or webhook. A route with none or several, or without the Secret its
destination needs, or with a URL that would put a credential in the
ConfigMap, fails the render with the route named: at install, rather than
in a pod that canary serve refuses to start (or a secret in plain sight).
Takes dict "route" and "index".
*/}}
{{- define "canary.notifyDestination" -}}
{{- $r := .route }}
{{- $where := printf "notifications.routes[%d] (%q)" .index ($r.name | default "") }}
{{- /* User info, or a query parameter that usually carries a secret. */}}
{{- $credentialURL := `^[a-zA-Z]+://[^/?#]*@|[?&]([a-z_]*token|api[-_]?key|key|sig|signature|secret|password|code)=` }}
{{- $dests := list }}
{{- range $d := list "alertmanager" "slack" "teams" "webhook" }}
{{- if hasKey $r $d }}{{ $dests = append $dests $d }}{{ end }}
{{- end }}
{{- if ne (len $dests) 1 }}
{{- fail (printf "%s: give exactly one of alertmanager, slack, teams and webhook, got %d" $where (len $dests)) }}
{{- end }}
{{- $dest := first $dests }}
{{- $d := get $r $dest }}
{{- if and $d.url (regexMatch $credentialURL $d.url) }}
{{- if eq $dest "webhook" }}
{{- fail (printf "%s: webhook.url holds a credential (user:password@ or a token parameter), and canary.yml is a ConfigMap: give the URL in webhook.urlSecret" $where) }}
{{- else }}
{{- fail (printf "%s: alertmanager.url holds a credential (user:password@ or a token parameter), and canary.yml is a ConfigMap: give it by bearerTokenSecret or basicAuth" $where) }}
{{- end }}
{{- end }}
{{- if and (eq $dest "alertmanager") (hasKey $r "sendResolved") (not $r.sendResolved) }}
{{- fail (printf "%s: an alertmanager route always sends resolutions, or its alerts would never clear: remove sendResolved: false" $where) }}
{{- end }}
{{- $url := and $d.urlSecret $d.urlSecret.name }}
{{- if and (has $dest (list "slack" "teams")) (not $url) }}
{{- fail (printf "%s: set %s.urlSecret.name, the Secret holding the incoming webhook URL (the URL is a secret, so never inline)" $where $dest) }}
{{- end }}
{{- if eq $dest "webhook" }}
{{- if and $d.url $url }}
{{- fail (printf "%s: set webhook.url or webhook.urlSecret, not both" $where) }}
{{- else if not (or $d.url $url) }}
{{- fail (printf "%s: set webhook.url, or webhook.urlSecret.name for a URL that holds a token" $where) }}
{{- end }}
{{- if and $d.hmacSecret (not $d.hmacSecret.name) }}
{{- fail (printf "%s: set webhook.hmacSecret.name, the Secret holding the HMAC key, or leave hmacSecret out for unsigned bodies" $where) }}
{{- end }}
{{- end }}
{{- $dest }}
{{- end }}

{{/* The file of a mounted Secret: secretsDir/<volume>/<path>. */}}
{{- define "canary.secretFile" -}}
{{- printf "%s/%s/%s" (include "canary.secretsDir" .root) .volume .path }}
{{- end }}

{{/*
The variable a database's DSN is read from, as the service computes it:
CANARY_POSTGRES_DSN, or CANARY_POSTGRES_<NAME>_DSN with - and . as _.
*/}}
{{- define "canary.postgresDSNEnv" -}}
{{- if . }}
{{- printf "CANARY_POSTGRES_%s_DSN" (. | upper | replace "-" "_" | replace "." "_") }}
{{- else }}
{{- "CANARY_POSTGRES_DSN" }}
{{- end }}
{{- end }}

{{/* Label matchers scoping the alerts to this release. */}}
{{- define "canary.alertMatchers" -}}
{{- .Values.prometheusRule.matchers | default (printf "job=%q,namespace=%q" (include "canary.fullname" .) .Release.Namespace) }}
{{- end }}

{{/* Whether the pod mounts a service account token. */}}
{{- define "canary.automountToken" -}}
{{- if or .Values.rbac.create .Values.serviceAccount.automountToken }}true{{ else }}false{{ end }}
{{- end }}

{{/*
The git-sync container, as the sidecar and (oneTime) the init container.
It runs as git-sync's own user (65533), which its image's /etc/passwd names,
as SSH requires; fsGroup makes the shared checkout readable to canary.
Credentials are given as variables naming mounted files, never as flags.
*/}}
{{- define "canary.gitSyncContainer" -}}
{{- $g := .root.Values.gitSync -}}
image: {{ printf "%s:%s" $g.image.repository $g.image.tag }}
imagePullPolicy: {{ $g.image.pullPolicy }}
args:
  - --repo={{ $g.repo }}
  - --ref={{ $g.ref }}
  - --depth={{ $g.depth }}
  - --period={{ $g.period }}
  - --root={{ include "canary.gitRoot" .root }}
  - --link={{ include "canary.gitLink" .root }}
  {{- if .oneTime }}
  - --one-time
  {{- end }}
  {{- with $g.extraArgs }}
  {{- toYaml . | nindent 2 }}
  {{- end }}
{{- if or $g.passwordSecret.name $g.ssh.existingSecret }}
env:
  {{- if $g.passwordSecret.name }}
  - name: GITSYNC_USERNAME
    value: {{ $g.username | quote }}
  - name: GITSYNC_PASSWORD_FILE
    value: /etc/git-secret/https/password
  {{- end }}
  {{- if $g.ssh.existingSecret }}
  - name: GITSYNC_SSH
    value: "true"
  - name: GITSYNC_SSH_KEY_FILE
    value: /etc/git-secret/ssh/ssh
  - name: GITSYNC_SSH_KNOWN_HOSTS
    value: {{ ternary "true" "false" (ne $g.ssh.knownHostsKey "") | quote }}
  {{- if $g.ssh.knownHostsKey }}
  - name: GITSYNC_SSH_KNOWN_HOSTS_FILE
    value: /etc/git-secret/ssh/known_hosts
  {{- end }}
  {{- end }}
{{- end }}
resources:
  {{- toYaml $g.resources | nindent 2 }}
securityContext:
  {{- toYaml (merge (dict "runAsUser" 65533 "runAsGroup" 65533) .root.Values.securityContext) | nindent 2 }}
volumeMounts:
  - name: git
    mountPath: {{ include "canary.gitRoot" .root }}
  # HOME of the image: git writes its config there.
  - name: git-tmp
    mountPath: /tmp
  {{- if $g.passwordSecret.name }}
  - name: git-password
    mountPath: /etc/git-secret/https
    readOnly: true
  {{- end }}
  {{- if $g.ssh.existingSecret }}
  - name: git-ssh
    mountPath: /etc/git-secret/ssh
    readOnly: true
  {{- end }}
{{- end }}
