{{/* Chart name, overridable. */}}
{{- define "certpush-operator.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/*
Prefix of every object name. Release "certpush-operator" gives "certpush-operator", the name the plain
manifests in deploy/manifests use.
*/}}
{{- define "certpush-operator.fullname" -}}
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

{{- define "certpush-operator.chart" -}}
{{- printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/*
The chart's own labels. Every object gets them plus `commonLabels` ("labels" / "labelsWith" below).
*/}}
{{- define "certpush-operator.chartLabels" -}}
helm.sh/chart: {{ include "certpush-operator.chart" . }}
{{ include "certpush-operator.selectorLabels" . }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/part-of: certpush-operator
app.kubernetes.io/managed-by: {{ .Release.Service }}
{{- end }}

{{/*
Labels of one object as a YAML map, called with (list $ctx $extra) or (list $ctx $extra $own): $own
(default: the chart's labels above) wins, then the object's own extra labels ($extra: podLabels,
serviceAccount.labels, a ServiceMonitor's labels...), then `commonLabels`. Merged as maps, so a key given
twice is written once, and neither extra nor common labels can change the immutable selector labels.
*/}}
{{- define "certpush-operator.labelsWith" -}}
{{- $ctx := index . 0 }}
{{- $extra := index . 1 | default dict }}
{{- $own := dict }}
{{- if gt (len .) 2 }}
{{- $own = index . 2 }}
{{- else }}
{{- $own = include "certpush-operator.chartLabels" $ctx | fromYaml }}
{{- end }}
{{- toYaml (merge (dict) $own $extra ($ctx.Values.commonLabels | default dict)) }}
{{- end }}

{{/* Labels on every object: the chart's plus `commonLabels`. */}}
{{- define "certpush-operator.labels" -}}
{{- include "certpush-operator.labelsWith" (list . dict) }}
{{- end }}

{{/*
The CRD is one object shared by every release and by the plain manifests, so it carries no
per-release (instance) or per-version labels: those would make server-side applies from the other
installs conflict with this one. `commonLabels` are added.
*/}}
{{- define "certpush-operator.crdLabels" -}}
{{- $own := dict "helm.sh/chart" (include "certpush-operator.chart" .) "app.kubernetes.io/name" (include "certpush-operator.name" .) "app.kubernetes.io/part-of" "certpush-operator" "app.kubernetes.io/managed-by" .Release.Service }}
{{- include "certpush-operator.labelsWith" (list . dict $own) }}
{{- end }}

{{/* Immutable Deployment selector: never add labels here that change between releases. */}}
{{- define "certpush-operator.selectorLabels" -}}
app.kubernetes.io/name: {{ include "certpush-operator.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end }}

{{- define "certpush-operator.serviceAccountName" -}}
{{- if .Values.serviceAccount.create }}
{{- default (include "certpush-operator.fullname" .) .Values.serviceAccount.name }}
{{- else }}
{{- required "serviceAccount.name is required when serviceAccount.create is false" .Values.serviceAccount.name }}
{{- end }}
{{- end }}

{{/* The one namespace the operator watches in namespace scope. */}}
{{- define "certpush-operator.watchNamespace" -}}
{{- default .Release.Namespace .Values.watchNamespace }}
{{- end }}

{{/* The namespaces the operator watches, as JSON (`include ... | fromJsonArray`): none (all) in cluster scope,
watchNamespace in namespace scope, watchNamespaces (the schema refuses repeats) in namespaces scope. */}}
{{- define "certpush-operator.watchedNamespaces" -}}
{{- if eq .Values.scope "namespace" }}
{{- list (include "certpush-operator.watchNamespace" .) | toJson }}
{{- else if eq .Values.scope "namespaces" }}
{{- if not .Values.watchNamespaces }}
{{- fail "scope: namespaces needs watchNamespaces: the namespaces to watch (for example [team-a, team-b])" }}
{{- end }}
{{- .Values.watchNamespaces | toJson }}
{{- else }}
{{- list | toJson }}
{{- end }}
{{- end }}

{{/* repository@digest pins the image; otherwise repository:tag, the tag defaulting to appVersion. */}}
{{- define "certpush-operator.image" -}}
{{- if .Values.image.digest }}
{{- printf "%s@%s" .Values.image.repository .Values.image.digest }}
{{- else }}
{{- printf "%s:%s" .Values.image.repository (default .Chart.AppVersion .Values.image.tag) }}
{{- end }}
{{- end }}

{{/* Where the SCM CA bundle is mounted, when one is configured. */}}
{{- define "certpush-operator.scmCaDir" -}}
/etc/certpush/scm-ca
{{- end }}

{{- define "certpush-operator.scmCaEnabled" -}}
{{- $ca := .Values.scm.caBundle }}
{{- if and $ca.configMapName $ca.secretName }}
{{- fail "scm.caBundle: set either configMapName or secretName, not both" }}
{{- end }}
{{- if or $ca.configMapName $ca.secretName }}true{{ end }}
{{- end }}

{{/*
Name of the leader election Lease.
*/}}
{{- define "certpush-operator.digestKeySecret" -}}
{{- .Values.digestKey.existingSecret | default (printf "%s-digest-key" (include "certpush-operator.fullname" .)) }}
{{- end }}

{{- define "certpush-operator.leaseName" -}}
{{- .Values.leaderElection.leaseName | default (include "certpush-operator.fullname" .) }}
{{- end }}

{{/*
The operator's permissions, shared by the ClusterRole (scope: cluster) and the Role (scope: namespace)
so both modes grant exactly the same verbs. Issue #4: CertificatePush get/list/watch (and patch, for the
finalizer); status patch only (the operator writes status with server-side apply, never a PUT);
Secrets read-only; events create/patch; nothing else.
*/}}
{{- define "certpush-operator.rules" -}}
# patch: only metadata.finalizers, for spec.deletionPolicy: Delete.
- apiGroups: ["scm.certpush.dev"]
  resources: ["certificatepushes"]
  verbs: ["get", "list", "watch", "patch"]
- apiGroups: ["scm.certpush.dev"]
  resources: ["certificatepushes/status"]
  verbs: ["patch"]
# Accounts: read, and their status (Ready, usedBy) written.
- apiGroups: ["scm.certpush.dev"]
  resources: ["scmaccounts"]
  verbs: ["get", "list", "watch"]
- apiGroups: ["scm.certpush.dev"]
  resources: ["scmaccounts/status"]
  verbs: ["patch"]
{{- if eq .Values.scope "cluster" }}
{{- /* Cluster accounts are watched only when every namespace is; their Secrets are in the release namespace. */}}
- apiGroups: ["scm.certpush.dev"]
  resources: ["clusterscmaccounts"]
  verbs: ["get", "list", "watch"]
- apiGroups: ["scm.certpush.dev"]
  resources: ["clusterscmaccounts/status"]
  verbs: ["patch"]
# A ClusterSCMAccount's namespaceSelector is matched against the namespace's labels.
- apiGroups: [""]
  resources: ["namespaces"]
  verbs: ["get"]
{{- end }}
{{- if or (ne .Values.scope "cluster") (has "*" (.Values.rbac.secretNamespaces | default list)) }}
# Read-only: the token is read at reconcile time; list/watch (metadata only) re-triggers referrers on rotation.
- apiGroups: [""]
  resources: ["secrets"]
  verbs: ["get", "list", "watch"]
{{- end }}
- apiGroups: ["events.k8s.io"]
  resources: ["events"]
  verbs: ["create", "patch"]
{{- end }}

{{/* --metrics-addr takes a socket address: IPv6 hosts need brackets. */}}
{{- define "certpush-operator.metricsAddr" -}}
{{- if contains ":" .Values.metrics.bindAddress }}
{{- printf "[%s]:%d" .Values.metrics.bindAddress (int .Values.metrics.port) }}
{{- else }}
{{- printf "%s:%d" .Values.metrics.bindAddress (int .Values.metrics.port) }}
{{- end }}
{{- end }}

{{/*
imagePullSecrets of the Pod and the ServiceAccount: `imagePullSecrets` plus `global.imagePullSecrets`
(which an umbrella chart sets for all its subcharts), each entry `{name: x}` or a plain string, without
duplicates. Empty output when there are none.
*/}}
{{- define "certpush-operator.imagePullSecrets" -}}
{{- $global := list }}
{{- if .Values.global }}
{{- $global = .Values.global.imagePullSecrets | default list }}
{{- end }}
{{- $names := list }}
{{- range concat (.Values.imagePullSecrets | default list) $global }}
{{- $name := "" }}
{{- if kindIs "string" . }}
{{- $name = . }}
{{- else if kindIs "map" . }}
{{- $name = .name }}
{{- end }}
{{- if and $name (not (has $name $names)) }}
{{- $names = append $names $name }}
{{- end }}
{{- end }}
{{- $refs := list }}
{{- range $names }}
{{- $refs = append $refs (dict "name" .) }}
{{- end }}
{{- with $refs }}
{{- toYaml . }}
{{- end }}
{{- end }}

{{/* The Prometheus Operator's kinds are served (the capabilities of the cluster, or --api-versions). */}}
{{- define "certpush-operator.hasServiceMonitor" -}}
{{- if .Capabilities.APIVersions.Has "monitoring.coreos.com/v1/ServiceMonitor" }}true{{ end }}
{{- end }}

{{- define "certpush-operator.hasPrometheusRule" -}}
{{- if .Capabilities.APIVersions.Has "monitoring.coreos.com/v1/PrometheusRule" }}true{{ end }}
{{- end }}

{{- /* Kubernetes 1.30+ (GA there); the beta API of 1.28-1.29 is off unless enabled, so it is not used. */}}
{{- define "certpush-operator.hasValidatingAdmissionPolicy" -}}
{{- if .Capabilities.APIVersions.Has "admissionregistration.k8s.io/v1/ValidatingAdmissionPolicy" }}true{{ end }}
{{- end }}

{{- /* The admission policy's and its binding's name. Both are cluster-scoped: a namespaced release adds its
namespace, so releases of one name in two namespaces do not collide (cluster-scope releases collide on their
ClusterRole already). */}}
{{- define "certpush-operator.admissionPolicyName" -}}
{{- if eq .Values.scope "cluster" }}
{{- include "certpush-operator.fullname" . }}-secret-references
{{- else }}
{{- include "certpush-operator.fullname" . }}-{{ .Release.Namespace }}-secret-references
{{- end }}
{{- end }}

{{/*
PromQL label matchers that pick this release's operator series: `metrics.prometheusRule.selector`, or the
`job` label the chart's ServiceMonitor gives them (the metrics Service's name).
*/}}
{{- define "certpush-operator.promSelector" -}}
{{- .Values.metrics.prometheusRule.selector | default (printf "job=%q" (printf "%s-metrics" (include "certpush-operator.fullname" .))) }}
{{- end }}

{{/*
With `scope: cluster` and no "*" in rbac.secretNamespaces: the namespaces whose Secrets the operator reads (the
release namespace, for ClusterSCMAccounts, and each listed one), as a JSON array; empty otherwise.
*/}}
{{- define "certpush-operator.secretNamespaces" -}}
{{- $listed := .Values.rbac.secretNamespaces | default list }}
{{- if and (eq .Values.scope "cluster") (not (has "*" $listed)) }}
{{- append $listed .Release.Namespace | uniq | sortAlpha | toJson }}
{{- else }}
{{- list | toJson }}
{{- end }}
{{- end }}
