{{- define "plexus.name" -}}
{{- .Chart.Name | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{- define "plexus.fullname" -}}
{{- if contains .Chart.Name .Release.Name -}}
{{- .Release.Name | trunc 63 | trimSuffix "-" -}}
{{- else -}}
{{- printf "%s-%s" .Release.Name .Chart.Name | trunc 63 | trimSuffix "-" -}}
{{- end -}}
{{- end -}}

{{- define "plexus.selectorLabels" -}}
app.kubernetes.io/name: {{ include "plexus.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end -}}

{{- define "plexus.labels" -}}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" }}
{{ include "plexus.selectorLabels" . }}
app.kubernetes.io/version: {{ include "plexus.tag" . | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
app.kubernetes.io/component: node
{{- end -}}

{{/* The image tag: explicit, never "latest". */}}
{{- define "plexus.tag" -}}
{{- $tag := .Values.image.tag | default .Chart.AppVersion | toString -}}
{{- if or (eq $tag "latest") (eq $tag "") -}}
{{- fail "image.tag must name a version: \"latest\" is not accepted (scripts/image.sh tags images with git describe)" -}}
{{- end -}}
{{- $tag -}}
{{- end -}}

{{- define "plexus.tokenSecret" -}}
{{- if .Values.adminToken.existingSecret -}}
{{- .Values.adminToken.existingSecret -}}
{{- else if .Values.adminToken.value -}}
{{- printf "%s-admin-token" (include "plexus.fullname" .) -}}
{{- else -}}
{{- fail "set adminToken.existingSecret (a Secret with the token under adminToken.key) or adminToken.value" -}}
{{- end -}}
{{- end -}}

{{- define "plexus.validate" -}}
{{- if not (has .Values.mode (list "embedded" "external")) -}}
{{- fail (printf "mode %q: want embedded or external" .Values.mode) -}}
{{- end -}}
{{- if and (eq .Values.mode "external") (empty .Values.nats.urls) -}}
{{- fail "mode external needs nats.urls (the NATS cluster's nats:// or tls:// URLs)" -}}
{{- end -}}
{{- if and (eq .Values.mode "embedded") (not (empty .Values.nats.urls)) -}}
{{- fail "nats.urls is set but mode is embedded: set mode: external" -}}
{{- end -}}
{{- if not (has .Values.sync (list "interval" "always")) -}}
{{- fail (printf "sync %q: want interval or always" .Values.sync) -}}
{{- end -}}
{{- if and .Values.nats.tls.existingSecret (ne (empty .Values.nats.tls.cert) (empty .Values.nats.tls.key)) -}}
{{- fail "nats.tls.cert and nats.tls.key go together (mutual TLS)" -}}
{{- end -}}
{{- end -}}

{{/* The node container and volumes, shared by the StatefulSet and the Deployment. */}}
{{- define "plexus.podSpec" -}}
{{- $external := eq .Values.mode "external" -}}
{{- with .Values.imagePullSecrets }}
imagePullSecrets:
  {{- toYaml . | nindent 2 }}
{{- end }}
securityContext:
  {{- toYaml .Values.podSecurityContext | nindent 2 }}
terminationGracePeriodSeconds: {{ .Values.terminationGracePeriodSeconds }}
enableServiceLinks: false
containers:
  - name: plexus
    image: "{{ .Values.image.repository }}:{{ include "plexus.tag" . }}"
    imagePullPolicy: {{ .Values.image.pullPolicy }}
    {{- if $external }}
    args:
      - serve
      - --roles={{ join "," .Values.roles }}
      - --nats={{ join "," .Values.nats.urls }}
      - --nats-replicas={{ .Values.nats.streamReplicas }}
      {{- if .Values.nats.credentials.existingSecret }}
      - --nats-creds=/etc/plexus/nats-creds/{{ .Values.nats.credentials.key }}
      {{- end }}
      {{- with .Values.nats.tls.existingSecret }}
      - --nats-tls-ca=/etc/plexus/nats-tls/{{ $.Values.nats.tls.ca }}
      {{- if $.Values.nats.tls.cert }}
      - --nats-tls-cert=/etc/plexus/nats-tls/{{ $.Values.nats.tls.cert }}
      - --nats-tls-key=/etc/plexus/nats-tls/{{ $.Values.nats.tls.key }}
      {{- end }}
      {{- end }}
    {{- else }}
    args:
      - up
      - --sync={{ .Values.sync }}
    {{- end }}
      - --shutdown-timeout={{ sub .Values.terminationGracePeriodSeconds 5 }}s
      {{- if .Values.config }}
      - --config=/etc/plexus/config/plexus.yaml
      {{- end }}
      {{- with .Values.extraArgs }}
      {{- toYaml . | nindent 6 }}
      {{- end }}
    env:
      - name: PLEXUS_ADMIN_TOKEN
        valueFrom:
          secretKeyRef:
            name: {{ include "plexus.tokenSecret" . }}
            key: {{ .Values.adminToken.key }}
      - name: PLEXUS_DATA_DIR
        value: /var/lib/plexus
      - name: PLEXUS_GATEWAY_ADDR
        value: ":3000"
      - name: PLEXUS_ADMIN_ADDR
        value: ":3100"
      - name: PLEXUS_LOG_FORMAT
        value: json
      - name: PLEXUS_LOG_LEVEL
        value: {{ .Values.logLevel | quote }}
      {{- with .Values.extraEnv }}
      {{- toYaml . | nindent 6 }}
      {{- end }}
    ports:
      - name: gateway
        containerPort: 3000
        protocol: TCP
      - name: admin
        containerPort: 3100
        protocol: TCP
    startupProbe:
      httpGet:
        path: /health
        port: admin
      periodSeconds: 2
      failureThreshold: 60
    livenessProbe:
      httpGet:
        path: /health
        port: admin
      periodSeconds: 10
      timeoutSeconds: 5
      failureThreshold: 3
    readinessProbe:
      httpGet:
        path: /ready
        port: admin
      periodSeconds: 5
      timeoutSeconds: 3
      failureThreshold: 2
    securityContext:
      {{- toYaml .Values.securityContext | nindent 6 }}
    resources:
      {{- toYaml .Values.resources | nindent 6 }}
    volumeMounts:
      - name: data
        mountPath: /var/lib/plexus
      - name: tmp
        mountPath: /tmp
      {{- if .Values.config }}
      - name: config
        mountPath: /etc/plexus/config
        readOnly: true
      {{- end }}
      {{- if and $external .Values.nats.credentials.existingSecret }}
      - name: nats-creds
        mountPath: /etc/plexus/nats-creds
        readOnly: true
      {{- end }}
      {{- if and $external .Values.nats.tls.existingSecret }}
      - name: nats-tls
        mountPath: /etc/plexus/nats-tls
        readOnly: true
      {{- end }}
volumes:
  - name: tmp
    emptyDir:
      sizeLimit: 64Mi
  {{- if $external }}
  - name: data
    emptyDir:
      sizeLimit: 256Mi
  {{- end }}
  {{- if .Values.config }}
  - name: config
    configMap:
      name: {{ include "plexus.fullname" . }}-config
  {{- end }}
  {{- if and $external .Values.nats.credentials.existingSecret }}
  - name: nats-creds
    secret:
      secretName: {{ .Values.nats.credentials.existingSecret }}
      defaultMode: 0400
  {{- end }}
  {{- if and $external .Values.nats.tls.existingSecret }}
  - name: nats-tls
    secret:
      secretName: {{ .Values.nats.tls.existingSecret }}
      defaultMode: 0400
  {{- end }}
{{- with .Values.nodeSelector }}
nodeSelector:
  {{- toYaml . | nindent 2 }}
{{- end }}
{{- with .Values.tolerations }}
tolerations:
  {{- toYaml . | nindent 2 }}
{{- end }}
{{- with .Values.affinity }}
affinity:
  {{- toYaml . | nindent 2 }}
{{- end }}
{{- end -}}
