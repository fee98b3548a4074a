{{/* Names and labels. */}}
{{- define "shr.fullname" -}}
{{- if contains .Chart.Name .Release.Name -}}
{{- .Release.Name | trunc 63 | trimSuffix "-" -}}
{{- else -}}
{{- printf "%s-%s" .Release.Name .Chart.Name | trunc 63 | trimSuffix "-" -}}
{{- end -}}
{{- end }}

{{- define "shr.selectorLabels" -}}
app.kubernetes.io/name: {{ .Chart.Name }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end }}

{{- define "shr.labels" -}}
{{ include "shr.selectorLabels" . }}
app.kubernetes.io/version: {{ .Values.image.tag | default .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version }}
{{- end }}

{{/* The client URL of NATS: the dependency's service (named as the NATS chart names it), or
     externalNats.url. */}}
{{- define "shr.natsUrl" -}}
{{- if .Values.nats.enabled -}}
{{- $name := "" -}}
{{- if .Values.nats.fullnameOverride -}}
{{- $name = .Values.nats.fullnameOverride -}}
{{- else if contains "nats" .Release.Name -}}
{{- $name = .Release.Name -}}
{{- else -}}
{{- $name = printf "%s-nats" .Release.Name -}}
{{- end -}}
{{- printf "nats://%s:4222" ($name | trunc 63 | trimSuffix "-") -}}
{{- else -}}
{{- required "externalNats.url is required when nats.enabled is false" .Values.externalNats.url -}}
{{- end -}}
{{- end }}

{{/* One Deployment's configuration file. Takes a dict: root (the chart's context), actors (a
     list), identity (the NATS seed's name: central or webhook). Strings and lists go through
     toJson, whose output is also a valid TOML basic string or array. The chart's tests
     (deploy/tests/helm.rs) render this block with values.yaml and parse the result with the
     product's own config parser, so keep every action here one they know. */}}
{{- define "shr.configToml" -}}
# Written by the serverless-hosted-runner chart; edit config.body in the chart's values.
[controller]
id = {{ .root.Values.controller.id | toJson }}
nats_url = {{ include "shr.natsUrl" .root | toJson }}
nats_replicas = {{ .root.Values.controller.natsReplicas }}
{{- if .root.Values.natsAuth.existingSecret }}
nats_nkey_seed = {{ printf "file:/etc/shr/nats/%s.nk" .identity | toJson }}
{{- end }}
actors = {{ .actors | toJson }}
work_dir = "/var/lib/shr"
metrics_listen = {{ printf "0.0.0.0:%v" .root.Values.metrics.port | toJson }}

[webhook]
listen = {{ printf "0.0.0.0:%v" .root.Values.webhook.port | toJson }}
path = {{ .root.Values.webhook.path | toJson }}
{{- if .root.Values.webhook.secret }}
secret = {{ .root.Values.webhook.secret | toJson }}
{{- end }}
{{- if .root.Values.webhook.tls.existingSecret }}
tls = { cert = "/etc/shr/tls/tls.crt", key = "/etc/shr/tls/tls.key" }
{{- end }}

{{ .root.Values.config.body }}
{{- end }}
