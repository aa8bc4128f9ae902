{{/* The chart name, or nameOverride. */}}
{{- define "ferrolb.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/* The prefix of every object name: the release name when it already says "ferrolb". */}}
{{- define "ferrolb.fullname" -}}
{{- if .Values.fullnameOverride }}
{{- .Values.fullnameOverride | trunc 63 | trimSuffix "-" }}
{{- else }}
{{- $name := include "ferrolb.name" . }}
{{- if contains $name .Release.Name }}
{{- .Release.Name | trunc 63 | trimSuffix "-" }}
{{- else }}
{{- printf "%s-%s" .Release.Name $name | trunc 63 | trimSuffix "-" }}
{{- end }}
{{- end }}
{{- end }}

{{/* Labels on every object. */}}
{{- define "ferrolb.labels" -}}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" }}
app.kubernetes.io/name: {{ include "ferrolb.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/version: {{ .Values.image.tag | default .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
app.kubernetes.io/part-of: ferrolb
{{- end }}

{{/* Selector labels of one component: include with (dict "ctx" $ "component" "controller"). */}}
{{- define "ferrolb.selectorLabels" -}}
app.kubernetes.io/name: {{ include "ferrolb.name" .ctx }}
app.kubernetes.io/instance: {{ .ctx.Release.Name }}
app.kubernetes.io/component: {{ .component }}
{{- end }}

{{/* Every label of one component's objects. */}}
{{- define "ferrolb.componentLabels" -}}
{{ include "ferrolb.labels" .ctx }}
app.kubernetes.io/component: {{ .component }}
{{- end }}

{{/* The name of one component's objects, e.g. ferrolb-controller. */}}
{{- define "ferrolb.componentName" -}}
{{- printf "%s-%s" (include "ferrolb.fullname" .ctx) .component | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/* The image reference of both components. */}}
{{- define "ferrolb.image" -}}
{{- printf "%s:%s" .Values.image.repository (.Values.image.tag | default .Chart.AppVersion) }}
{{- end }}

{{/* Environment shared by both binaries: logging and which Services are ours. */}}
{{- define "ferrolb.commonEnv" -}}
- name: LOG_FORMAT
  value: {{ .Values.logging.format | quote }}
- name: RUST_LOG
  value: {{ .Values.logging.level | quote }}
- name: LB_CLASS
  value: {{ .Values.serviceClass.loadBalancerClass | quote }}
- name: HANDLE_CLASSLESS
  value: {{ .Values.serviceClass.handleClassless | quote }}
- name: POD_NAMESPACE
  valueFrom:
    fieldRef:
      fieldPath: metadata.namespace
{{- end }}

{{/* Container security settings both components share: no escalation, read-only root, nothing
kept but what a component adds back. */}}
{{- define "ferrolb.lockedDownContainer" -}}
allowPrivilegeEscalation: false
readOnlyRootFilesystem: true
seccompProfile:
  type: RuntimeDefault
{{- end }}
