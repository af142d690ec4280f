{{/* Names: <release>-<component>; a release named "vecraft" gets deployment/k8s's names. */}}
{{- define "vecraft.fullname" -}}
{{- .Release.Name | trunc 40 | trimSuffix "-" -}}
{{- end -}}

{{- define "vecraft.image" -}}
{{- printf "%s:%s" .Values.image.repository (default .Chart.AppVersion .Values.image.tag) -}}
{{- end -}}

{{/* Selector labels of one component; call with (dict "ctx" $ "component" "storage"). */}}
{{- define "vecraft.selectorLabels" -}}
app.kubernetes.io/name: vecraft
app.kubernetes.io/instance: {{ .ctx.Release.Name }}
app.kubernetes.io/component: {{ .component }}
{{- end -}}

{{- define "vecraft.labels" -}}
{{ include "vecraft.selectorLabels" . }}
app.kubernetes.io/part-of: vecraft
app.kubernetes.io/version: {{ .ctx.Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .ctx.Release.Service }}
helm.sh/chart: {{ printf "%s-%s" .ctx.Chart.Name .ctx.Chart.Version }}
{{- end -}}

{{/* Addresses every service is given. */}}
{{- define "vecraft.metaAddress" -}}
{{- printf "%s-meta:7200" (include "vecraft.fullname" .) -}}
{{- end -}}

{{- define "vecraft.journalAddresses" -}}
{{- $name := printf "%s-journal" (include "vecraft.fullname" .) -}}
{{- $out := list -}}
{{- range $i := until (int .Values.journal.instances) -}}
{{- $out = append $out (printf "%s-%d.%s:7100" $name $i $name) -}}
{{- end -}}
{{- join "," $out -}}
{{- end -}}

{{- define "vecraft.podSecurityContext" -}}
runAsNonRoot: true
runAsUser: {{ .Values.runAsUser }}
runAsGroup: {{ .Values.runAsUser }}
fsGroup: {{ .Values.runAsUser }}
seccompProfile: {type: RuntimeDefault}
{{- end -}}

{{- define "vecraft.containerSecurityContext" -}}
allowPrivilegeEscalation: false
readOnlyRootFilesystem: true
capabilities: {drop: [ALL]}
{{- end -}}

{{/* Pods of one component on different machines when possible; (dict "ctx" $ "component" ...). */}}
{{- define "vecraft.antiAffinity" -}}
podAntiAffinity:
  preferredDuringSchedulingIgnoredDuringExecution:
    - weight: 100
      podAffinityTerm:
        topologyKey: kubernetes.io/hostname
        labelSelector:
          matchLabels:
            {{- include "vecraft.selectorLabels" . | nindent 12 }}
{{- end -}}

{{/* POD_NAME and POD_IP, used in the args as $(POD_NAME) and $(POD_IP). */}}
{{- define "vecraft.podEnv" -}}
- name: POD_NAME
  valueFrom: {fieldRef: {fieldPath: metadata.name}}
- name: POD_IP
  valueFrom: {fieldRef: {fieldPath: status.podIP}}
{{- end -}}

{{/* Probes of a Vecraft service on its HTTP port (named http); startup failureThreshold as argument. */}}
{{- define "vecraft.serviceProbes" -}}
{{- $failures := . -}}
{{- $scheme := "HTTP" -}}
{{- if kindIs "map" . }}{{ $failures = .failures }}{{ $scheme = .scheme }}{{ end -}}
startupProbe:
  httpGet: {path: /healthz, port: http{{ if eq $scheme "HTTPS" }}, scheme: HTTPS{{ end }}}
  periodSeconds: 5
  failureThreshold: {{ $failures }}
livenessProbe:
  httpGet: {path: /healthz, port: http{{ if eq $scheme "HTTPS" }}, scheme: HTTPS{{ end }}}
  periodSeconds: 10
  timeoutSeconds: 5
  failureThreshold: 3
readinessProbe:
  httpGet: {path: /readyz, port: http{{ if eq $scheme "HTTPS" }}, scheme: HTTPS{{ end }}}
  periodSeconds: 5
  timeoutSeconds: 3
  failureThreshold: 3
{{- end -}}

{{/* A volume claim template; (dict "ctx" $ "component" "etcd" "persistence" .Values.etcd.persistence). */}}
{{- define "vecraft.dataClaim" -}}
- metadata:
    name: data
    labels:
      {{- include "vecraft.selectorLabels" . | nindent 6 }}
  spec:
    accessModes: [ReadWriteOnce]
    {{- if .persistence.storageClass }}
    storageClassName: {{ .persistence.storageClass | quote }}
    {{- end }}
    resources:
      requests: {storage: {{ .persistence.size }}}
{{- end -}}

{{/* A PodDisruptionBudget of one component; (dict "ctx" $ "component" ...). */}}
{{- define "vecraft.pdb" -}}
apiVersion: policy/v1
kind: PodDisruptionBudget
metadata:
  name: {{ include "vecraft.fullname" .ctx }}-{{ .component }}
  labels:
    {{- include "vecraft.labels" . | nindent 4 }}
spec:
  maxUnavailable: 1
  selector:
    matchLabels:
      {{- include "vecraft.selectorLabels" . | nindent 6 }}
{{- end -}}

{{/* Mutual TLS between pods (tls.internal.enabled): a service's certificate, key and the CA from
its Secret <fullname>-<component>-mtls (`vecraft certs k8s-secrets --release <fullname>`). */}}
{{- define "vecraft.mtlsArgs" -}}
- --tls-cert
- /etc/vecraft/mtls/tls.crt
- --tls-key
- /etc/vecraft/mtls/tls.key
- --tls-ca
- /etc/vecraft/mtls/ca.crt
- --tls-server-name
- {{ include "vecraft.fullname" . }}-peer
{{- end -}}

{{- define "vecraft.mtlsMount" -}}
- {name: mtls, mountPath: /etc/vecraft/mtls, readOnly: true}
{{- end -}}

{{/* (dict "ctx" $ "component" ...) */}}
{{- define "vecraft.mtlsVolume" -}}
- name: mtls
  secret: {secretName: {{ include "vecraft.fullname" .ctx }}-{{ .component }}-mtls, defaultMode: 0440}
{{- end -}}

{{/* A TLS block of nats.conf with the mounted files (as vecraft.local.nats.tls_block). */}}
{{- define "vecraft.natsTls" -}}
tls { cert_file: "/etc/vecraft/mtls/tls.crt", key_file: "/etc/vecraft/mtls/tls.key", ca_file: "/etc/vecraft/mtls/ca.crt", verify: true, timeout: 2 }
{{- end -}}
