{{/* Chart name, overridable. */}}
{{- define "routeiq.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/* Fully qualified app name: <release>-routeiq unless the release name already holds it. */}}
{{- define "routeiq.fullname" -}}
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

{{- define "routeiq.chart" -}}
{{- printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/* Labels on every object. */}}
{{- define "routeiq.labels" -}}
helm.sh/chart: {{ include "routeiq.chart" . }}
{{ include "routeiq.selectorLabels" . }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
app.kubernetes.io/part-of: routeiq
{{- end }}

{{/* Labels that select the pods: never change them on upgrade. */}}
{{- define "routeiq.selectorLabels" -}}
app.kubernetes.io/name: {{ include "routeiq.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end }}

{{- define "routeiq.serviceAccountName" -}}
{{- if .Values.serviceAccount.create }}
{{- default (include "routeiq.fullname" .) .Values.serviceAccount.name }}
{{- else }}
{{- default "default" .Values.serviceAccount.name }}
{{- end }}
{{- end }}

{{- define "routeiq.image" -}}
{{- printf "%s:%s" .Values.image.repository (default .Chart.AppVersion .Values.image.tag) }}
{{- end }}

{{/* The ConfigMap holding the RoutingConfig (and policies at its root if user-managed). */}}
{{- define "routeiq.configMapName" -}}
{{- default (printf "%s-config" (include "routeiq.fullname" .)) .Values.config.existingConfigMap }}
{{- end }}

{{- define "routeiq.policiesConfigMapName" -}}
{{- printf "%s-policies" (include "routeiq.fullname" .) }}
{{- end }}

{{/* The Secret holding the Redis URL. */}}
{{- define "routeiq.redisSecretName" -}}
{{- default (printf "%s-redis" (include "routeiq.fullname" .)) .Values.state.redis.existingSecret }}
{{- end }}

{{/*
The policy files to mount under <mountPath>/policies: the chart's bundled policies
(files/policies, the project's policies/ directory) when config.bundledPolicies, then
config.policies on top (same path: the inline one wins). A YAML map path -> content.
*/}}
{{- define "routeiq.policyFiles" -}}
{{- $files := dict }}
{{- if .Values.config.bundledPolicies }}
{{- range $path, $_ := .Files.Glob "files/policies/**" }}
{{- $_ := set $files (trimPrefix "files/policies/" $path) ($.Files.Get $path) }}
{{- end }}
{{- end }}
{{- range $path, $content := .Values.config.policies }}
{{- $_ := set $files $path $content }}
{{- end }}
{{- toYaml $files }}
{{- end }}

{{/* The RoutingConfig file's content: routingConfigYaml verbatim, else routingConfig. */}}
{{- define "routeiq.routingConfig" -}}
{{- if .Values.config.routingConfigYaml }}
{{- .Values.config.routingConfigYaml }}
{{- else }}
{{- toYaml .Values.config.routingConfig }}
{{- end }}
{{- end }}

{{/* A ConfigMap key for a policy path: ConfigMap keys cannot hold "/". */}}
{{- define "routeiq.policyKey" -}}
{{- . | replace "/" "__" }}
{{- end }}

{{/* Fail early on values that would render a broken release. */}}
{{- define "routeiq.validate" -}}
{{- if not (has .Values.state.backend (list "memory" "redis")) }}
{{- fail "state.backend must be memory or redis" }}
{{- end }}
{{- if and (eq .Values.state.backend "redis") (not .Values.state.redis.existingSecret) (not .Values.state.redis.url) }}
{{- fail "state.backend=redis needs state.redis.existingSecret (or state.redis.url for a throwaway cluster)" }}
{{- end }}
{{- if and .Values.podDisruptionBudget.enabled (not (kindIs "invalid" .Values.podDisruptionBudget.minAvailable)) (not (kindIs "invalid" .Values.podDisruptionBudget.maxUnavailable)) }}
{{- fail "podDisruptionBudget: set only one of maxUnavailable and minAvailable" }}
{{- end }}
{{- if lt (int .Values.terminationGracePeriodSeconds) (add (int .Values.preStopSleepSeconds) (int (ceil .Values.settings.gracePeriodSeconds))) }}
{{- fail "terminationGracePeriodSeconds must cover preStopSleepSeconds + settings.gracePeriodSeconds" }}
{{- end }}
{{- end }}
